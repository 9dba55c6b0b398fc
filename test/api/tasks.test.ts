import { describe, expect, it } from 'vitest';
import { seedToJson } from '../../src/contracts/seed.js';
import { randomSeed } from '../../src/dispatch/random-seed.js';
import { createCatalogueResolver } from '../../src/models/catalogue.js';
import { authorized, buildTestApp, createEchoDispatcher, imageTask, postTasks, TEST_API_KEY, testConfig, testRecords } from '../helper.js';

describe('POST /v1/tasks', () => {
  it('answers a valid task with a retryable noAvailableWorker (503) while no workers exist, never a fake image', async () => {
    const app = await buildTestApp();
    const task = imageTask({ embeddings: [{ model: 'civitai:7808@9208', weight: 0.8 }] });
    const { status, body } = await postTasks(app, [task]);
    expect(status).toBe(503);
    expect(body.data).toEqual([]);
    expect(body.errors).toEqual([
      expect.objectContaining({ code: 'noAvailableWorker', retryable: true, taskUUID: task['taskUUID'], taskType: 'imageInference', taskIndex: 0 }),
    ]);
  });

  it('is also served at POST /v1', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const response = await app.inject({ method: 'POST', url: '/v1', headers: authorized, payload: JSON.stringify([imageTask()]) });
    expect(response.statusCode).toBe(200);
    expect(response.json().data).toHaveLength(1);
  });

  it('runs the valid tasks and reports the invalid ones in the same response (partial success)', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const good = imageTask({ numberResults: 2, embeddings: [{ model: 'civitai:7808@9208', weight: 2.5 }] });
    const flux = imageTask({ model: 'runware:101@1', embeddings: [{ model: 'civitai:7808@9208' }] });
    const { status, body } = await postTasks(app, [good, flux, 'junk']);
    expect(status).toBe(200);
    expect(body.data.map((image) => image.taskUUID)).toEqual([good['taskUUID'], good['taskUUID']]);
    expect(body.errors.map((error) => [error.code, error.taskIndex])).toEqual([
      ['unsupportedEmbeddingArchitecture', 1],
      ['invalidTask', 2],
    ]);
    expect(body.errors[0]?.taskUUID).toBe(flux['taskUUID']);
    expect(body.warnings).toEqual([expect.objectContaining({ code: 'extremeEmbeddingWeight', taskUUID: good['taskUUID'] })]);
  });

  it('answers 400 when no task produced data and a client mistake is among the errors', async () => {
    const app = await buildTestApp();
    const { status, body } = await postTasks(app, [imageTask(), imageTask({ width: 1 })]);
    expect(status).toBe(400);
    expect(body.errors.map((error) => error.code).sort()).toEqual(['invalidParameter', 'noAvailableWorker', 'parameterOutOfRange']);
  });

  it('keeps a 64-bit seed exact from request to result', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const task = imageTask({ taskUUID: '0b8a3c36-5a43-4b1c-9d4e-5c7b0d7f1a21' });
    const payload = JSON.stringify([task]).replace('"width"', '"seed":18446744073709551614,"width"');
    const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: authorized, payload });
    expect(response.statusCode).toBe(200);
    // Read the raw text: JSON.parse in the test would round the number we are checking.
    expect(response.body).toContain('"seed":18446744073709551614}');
    // A seed sent as a string comes back as a string.
    const string = await postTasks(app, [imageTask({ seed: '9007199254740993' })]);
    expect(string.body.data[0]?.seed).toBe('9007199254740993');
    expect((await postTasks(app, [imageTask({ seed: '77' })])).body.data[0]?.seed).toBe('77');
    const small = await postTasks(app, [imageTask({ seed: 77 })]);
    expect(small.body.data[0]?.seed).toBe(77);
  });

  it('refuses a seed that would have to be rounded', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const { status, body } = await postTasks(app, JSON.stringify([imageTask()]).replace('"width"', '"seed":1.8446744073709552e19,"width"'));
    expect(status).toBe(400);
    expect(body.errors[0]).toMatchObject({ code: 'parameterOutOfRange', parameter: 'seed' });
  });

  it('applies MAX_EMBEDDINGS_PER_TASK from the configuration', async () => {
    const app = await buildTestApp({ config: testConfig({ limits: { ...testConfig().limits, maxEmbeddingsPerTask: 1 } }) });
    const { status, body } = await postTasks(app, [imageTask({ embeddings: [{ model: 'civitai:7808@9208' }, { model: 'civitai:1000@1' }] })]);
    expect(status).toBe(400);
    expect(body.errors[0]).toMatchObject({ code: 'tooManyEmbeddings', max: 1 });
  });
});

describe('failures that are not the client\'s', () => {
  it('answers 500 internalError without leaking the cause when a stage throws', async () => {
    const app = await buildTestApp({
      dispatcher: {
        dispatch: async () => {
          throw new Error('secret database password in stack');
        },
      },
    });
    const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: authorized, payload: JSON.stringify([imageTask()]) });
    expect(response.statusCode).toBe(500);
    expect(response.json().errors).toEqual([expect.objectContaining({ code: 'internalError', retryable: true })]);
    expect(response.body).not.toContain('secret');
    expect(response.headers['x-request-id']).toBeTruthy();
  });
});

describe('bad request bodies', () => {
  it.each([
    ['malformed JSON', '[{"taskType": "imageInference",', 400, 'invalidJson'],
    ['a single object', JSON.stringify(imageTask()), 400, 'invalidRequestBody'],
    ['an empty array', '[]', 400, 'invalidRequestBody'],
    ['a string', '"hello"', 400, 'invalidRequestBody'],
    ['null', 'null', 400, 'invalidRequestBody'],
    ['deeply nested junk', `${'['.repeat(200_000)}${']'.repeat(200_000)}`, 400, 'invalidTask'],
    ['deeply nested junk with a long number', `${'['.repeat(200_000)}12345678901234567890${']'.repeat(200_000)}`, 400, 'invalidJson'],
  ])('%s → %i %s', async (_name, payload, status, code) => {
    const app = await buildTestApp();
    const response = await postTasks(app, payload);
    expect(response.status).toBe(status);
    expect(response.body.errors[0]).toMatchObject({ code, retryable: false });
    expect(response.body.data).toEqual([]);
  });

  it('refuses more tasks than MAX_TASKS_PER_REQUEST', async () => {
    const app = await buildTestApp({ config: testConfig({ limits: { ...testConfig().limits, maxTasksPerRequest: 3 } }) });
    const { status, body } = await postTasks(app, [imageTask(), imageTask(), imageTask(), imageTask()]);
    expect(status).toBe(400);
    expect(body.errors).toEqual([expect.objectContaining({ code: 'tooManyTasks', max: 3 })]);
  });

  it('refuses a body over BODY_LIMIT_BYTES with 413', async () => {
    const app = await buildTestApp({ config: testConfig({ limits: { ...testConfig().limits, bodyLimitBytes: 1024 } }) });
    const { status, body } = await postTasks(app, [imageTask({ positivePrompt: 'x'.repeat(2000) })]);
    expect(status).toBe(413);
    expect(body.errors).toEqual([expect.objectContaining({ code: 'payloadTooLarge', max: 1024 })]);
  });

  it.each(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x'])('refuses Content-Type %s with 415', async (contentType) => {
    const app = await buildTestApp();
    const { status, body } = await postTasks(app, JSON.stringify([imageTask()]), { ...authorized, 'content-type': contentType });
    expect(status).toBe(415);
    expect(body.errors[0]).toMatchObject({ code: 'unsupportedMediaType', allowed: ['application/json'] });
  });

  it('accepts application/json with a charset', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const { status } = await postTasks(app, [imageTask()], { ...authorized, 'content-type': 'application/json; charset=utf-8' });
    expect(status).toBe(200);
  });

  it('keeps __proto__ keys inert and reports them per task, without sinking the other tasks', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const good = imageTask();
    const payload = `[${JSON.stringify(good)},${JSON.stringify(imageTask()).replace(/^\{/, '{"__proto__":{"isAdmin":true},')}]`;
    const { status, body } = await postTasks(app, payload);
    expect(status).toBe(200);
    expect(body.data).toHaveLength(1);
    expect(body.errors).toEqual([expect.objectContaining({ code: 'unknownParameter', parameter: '__proto__', taskIndex: 1 })]);
    expect(({} as Record<string, unknown>)['isAdmin']).toBeUndefined();
  });

  it('answers an unknown route in the error shape', async () => {
    const app = await buildTestApp();
    const response = await app.inject({ method: 'GET', url: '/v1/taskz', headers: authorized });
    expect(response.statusCode).toBe(404);
    expect(response.json().errors[0]).toMatchObject({ code: 'routeNotFound' });
  });
});

describe('API keys', () => {
  it('refuses a request without a key (401 missingApiKey)', async () => {
    const app = await buildTestApp();
    const { status, body } = await postTasks(app, [imageTask()], { 'content-type': 'application/json' });
    expect(status).toBe(401);
    expect(body.errors).toEqual([expect.objectContaining({ code: 'missingApiKey', retryable: false })]);
  });

  it.each([`Bearer ${TEST_API_KEY}x`, `Bearer ${TEST_API_KEY.slice(0, -1)}`, 'Bearer ', `Basic ${TEST_API_KEY}`, TEST_API_KEY])(
    'refuses the Authorization header %j',
    async (header) => {
      const app = await buildTestApp();
      const { status, body } = await postTasks(app, [imageTask()], { 'content-type': 'application/json', authorization: header });
      expect(status).toBe(401);
      expect(['missingApiKey', 'invalidApiKey']).toContain(body.errors[0]?.code);
    },
  );

  it('checks the key before reading the body', async () => {
    const app = await buildTestApp();
    const { status, body } = await postTasks(app, '{not json', { 'content-type': 'application/json', authorization: 'Bearer wrong-key-wrong-key' });
    expect(status).toBe(401);
    expect(body.errors[0]?.code).toBe('invalidApiKey');
  });

  it('accepts any of several keys, and is open when none are configured', async () => {
    const second = 'second-key-abcdefghijklmnop';
    const keyed = await buildTestApp({ config: testConfig({ apiKeys: [TEST_API_KEY, second] }), dispatcher: createEchoDispatcher() });
    expect((await postTasks(keyed, [imageTask()], { ...authorized, authorization: `Bearer ${second}` })).status).toBe(200);
    const open = await buildTestApp({ config: testConfig({ apiKeys: [] }), dispatcher: createEchoDispatcher() });
    expect((await postTasks(open, [imageTask()], { 'content-type': 'application/json' })).status).toBe(200);
  });

  it('leaves health probes and the API description open', async () => {
    const app = await buildTestApp();
    for (const url of ['/health/live', '/health/ready', '/openapi.json']) {
      expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    }
  });
});

describe('request ids', () => {
  it('echoes a client x-request-id and generates one otherwise', async () => {
    const app = await buildTestApp({ resolver: createCatalogueResolver(testRecords) });
    const given = await postTasks(app, [imageTask()], { ...authorized, 'x-request-id': 'client-trace-123' });
    expect(given.headers['x-request-id']).toBe('client-trace-123');
    const generated = await postTasks(app, [imageTask()]);
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const hostile = await postTasks(app, [imageTask()], { ...authorized, 'x-request-id': 'a b\u0000c'.repeat(100) });
    expect(hostile.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("Runware's wire format over REST", () => {
  it('answers a success with data alone: no empty errors or warnings member', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const response = await app.inject({ method: 'POST', url: '/v1', headers: authorized, payload: JSON.stringify([imageTask()]) });
    expect(response.statusCode).toBe(200);
    expect(Object.keys(response.json())).toEqual(['data']);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it('repeats the dominant error at the top level when no task produced data, and only then', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const failed = await app.inject({ method: 'POST', url: '/v1', headers: authorized, payload: JSON.stringify([imageTask({ width: 500 }), imageTask({ model: 'civitai:999@1' })]) });
    expect(failed.statusCode).toBe(400);
    expect(failed.json().error).toEqual({ code: 'invalidParameter', message: 'width must be a multiple of 64; got 500 (nearest: 512).', parameter: 'width' });
    const partial = await app.inject({ method: 'POST', url: '/v1', headers: authorized, payload: JSON.stringify([imageTask(), imageTask({ width: 500 })]) });
    expect(partial.statusCode).toBe(200);
    expect(partial.json()).not.toHaveProperty('error');
    expect(partial.json().errors).toHaveLength(1);
    // Request-level refusals carry it too.
    const unauthorized = await app.inject({ method: 'POST', url: '/v1', headers: { 'content-type': 'application/json' }, payload: JSON.stringify([imageTask()]) });
    expect(unauthorized.json().error).toMatchObject({ code: 'missingApiKey' });
  });

  it('takes the key from an authentication task first in the array instead of the header', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const task = imageTask();
    const { status, body } = await postTasks(app, [{ taskType: 'authentication', apiKey: TEST_API_KEY }, task], { 'content-type': 'application/json' });
    expect(status).toBe(200);
    expect(body.data).toEqual([{ taskType: 'authentication' }, expect.objectContaining({ taskUUID: task['taskUUID'] })]);
    const wrong = await postTasks(app, [{ taskType: 'authentication', apiKey: 'wrong-key-wrong-key' }, imageTask()], { 'content-type': 'application/json' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.errors).toEqual([expect.objectContaining({ code: 'invalidApiKey', taskType: 'authentication' })]);
    // Not first: not Runware's payload auth, and no other key came.
    const late = await postTasks(app, [imageTask(), { taskType: 'authentication', apiKey: TEST_API_KEY }], { 'content-type': 'application/json' });
    expect(late.status).toBe(401);
  });

  it('answers ping with pong', async () => {
    const app = await buildTestApp();
    const { status, body } = await postTasks(app, [{ taskType: 'ping', ping: true }]);
    expect(status).toBe(200);
    expect(body.data).toEqual([{ taskType: 'ping', pong: true }]);
  });

  it('draws random seeds a JavaScript client reads exactly', async () => {
    const app = await buildTestApp({ dispatcher: createPoolLikeSeedEcho() });
    for (let round = 0; round < 20; round++) {
      const { body } = await postTasks(app, [imageTask({ numberResults: 20 })]);
      for (const image of body.data) expect(Number.isSafeInteger(image.seed)).toBe(true);
    }
  });
});

/** Draws seeds as the pool dispatcher does (src/dispatch/random-seed.ts) and reports them as it does. */
function createPoolLikeSeedEcho() {
  return {
    async dispatch({ task }: { task: { taskUUID: string; numberResults: number; seed?: bigint } }) {
      const first = task.seed ?? randomSeed();
      return {
        kind: 'images' as const,
        images: Array.from({ length: task.numberResults }, (_, index) => ({
          taskType: 'imageInference' as const,
          taskUUID: task.taskUUID,
          imageUUID: `image-${index}`,
          imageURL: 'http://127.0.0.1/x.png',
          seed: seedToJson(first + BigInt(index)),
        })),
      };
    },
  };
}
