import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Dispatcher } from '../../../src/contracts/dispatcher.js';
import { authorized, buildTestApp, createEchoDispatcher, imageTask, readTaskResponse, testConfig, TEST_API_KEY } from '../../helper.js';

const OTHER_KEY = 'other-key-0123456789abcdef';

async function appWith(dispatcher: Dispatcher = createEchoDispatcher()) {
  return buildTestApp({ config: testConfig({ apiKeys: [TEST_API_KEY, OTHER_KEY] }), dispatcher });
}

async function post(app: Awaited<ReturnType<typeof buildTestApp>>, tasks: unknown[], key = TEST_API_KEY) {
  const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { ...authorized, authorization: `Bearer ${key}` }, payload: JSON.stringify(tasks) });
  return { status: response.statusCode, body: readTaskResponse(response.body) };
}

const getResponse = (taskUUID: string) => ({ taskType: 'getResponse', taskUUID });

describe('getResponse', () => {
  it('gives a finished task its results again, each marked success, with exact seeds', async () => {
    const app = await appWith();
    const task = imageTask({ numberResults: 2, seed: 9007199254740993n.toString() });
    const first = await post(app, [task]);
    expect(first.status).toBe(200);
    const again = await post(app, [getResponse(String(task['taskUUID']))]);
    expect(again.status).toBe(200);
    expect(again.body.data).toEqual(first.body.data.map((image: object) => ({ ...image, status: 'success' })));
  });

  it('keeps the ids and seeds of images the answer carried inline, not their bytes', async () => {
    const app = await appWith({
      dispatch: async ({ task }) => ({ kind: 'images', images: [{ taskType: 'imageInference', taskUUID: task.taskUUID, imageUUID: randomUUID(), imageBase64Data: 'iVBORw0KGgo=', seed: 5 }] }),
    });
    const task = imageTask({ outputType: 'base64Data' });
    const answered = await post(app, [task]);
    expect(answered.body.data[0]).toMatchObject({ imageBase64Data: 'iVBORw0KGgo=' });
    const again = await post(app, [getResponse(String(task['taskUUID']))]);
    expect(again.body.data).toEqual([{ taskType: 'imageInference', taskUUID: task['taskUUID'], imageUUID: answered.body.data[0]?.imageUUID, seed: 5, status: 'success' }]);
  });

  it('says processing while the task runs', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const echo = createEchoDispatcher();
    const app = await appWith({ dispatch: async (task, context) => { await gate; return echo.dispatch(task, context); } });
    const task = imageTask();
    const running = post(app, [task]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const polled = await post(app, [getResponse(String(task['taskUUID']))]);
    expect(polled.body.data).toEqual([{ taskType: 'imageInference', taskUUID: task['taskUUID'], status: 'processing' }]);
    release();
    expect((await running).status).toBe(200);
    expect((await post(app, [getResponse(String(task['taskUUID']))])).body.data[0]).toMatchObject({ status: 'success' });
  });

  it("gives a refused task its errors, and never another key's task: taskNotFound, 404", async () => {
    const app = await appWith();
    const refused = imageTask({ width: 500 });
    await post(app, [refused]);
    const errors = await post(app, [getResponse(String(refused['taskUUID']))]);
    expect(errors.body.errors.map((error: { code: string }) => error.code)).toEqual(['invalidParameter']);

    const mine = imageTask();
    await post(app, [mine]);
    const stranger = await post(app, [getResponse(String(mine['taskUUID']))], OTHER_KEY);
    expect(stranger.status).toBe(404);
    expect(stranger.body.errors[0]).toMatchObject({ code: 'taskNotFound', parameter: 'taskUUID', retryable: false });
    expect((await post(app, [getResponse(randomUUID())])).body.errors[0]).toMatchObject({ code: 'taskNotFound' });
    expect((await post(app, [{ taskType: 'getResponse', taskUUID: 'not-a-uuid' }])).body.errors[0]).toMatchObject({ code: 'invalidParameter', parameter: 'taskUUID' });
  });
});

describe('GET /v1/tasks/{taskUUID}', () => {
  it('answers as getResponse does, for the key in the bearer header only', async () => {
    const app = await appWith();
    const task = imageTask();
    const first = await post(app, [task]);
    const read = (key?: string) => app.inject({ method: 'GET', url: `/v1/tasks/${String(task['taskUUID'])}`, headers: key ? { authorization: `Bearer ${key}` } : {} });
    const mine = await read(TEST_API_KEY);
    expect(mine.statusCode).toBe(200);
    expect(readTaskResponse(mine.body).data).toEqual(first.body.data.map((image: object) => ({ ...image, status: 'success' })));
    expect((await read(OTHER_KEY)).statusCode).toBe(404);
    const anonymous = await read();
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json().errors[0].code).toBe('missingApiKey');
    const malformed = await app.inject({ method: 'GET', url: '/v1/tasks/not-a-uuid', headers: { authorization: `Bearer ${TEST_API_KEY}` } });
    expect(malformed.statusCode).toBe(400);
  });
});
