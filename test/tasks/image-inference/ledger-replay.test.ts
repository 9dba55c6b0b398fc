import { createHash, randomUUID } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createAsyncDelivery } from '../../../src/async-delivery.js';
import { taskFingerprint } from '../../../src/tasks/image-inference/task-fingerprint.js';
import type { Dispatcher } from '../../../src/contracts/dispatcher.js';
import { authorized, buildTestApp, createEchoDispatcher, imageTask, readTaskResponse, TEST_API_KEY, testConfig } from '../../helper.js';

/** A dispatcher that counts its jobs and can hold them until released. */
function countingDispatcher(options: { hold?: Promise<void>; inline?: boolean } = {}) {
  const echo = createEchoDispatcher();
  const jobs: string[] = [];
  const dispatcher: Dispatcher = {
    async dispatch(validated, context) {
      jobs.push(validated.task.taskUUID);
      await options.hold;
      const outcome = await echo.dispatch(validated, context);
      if (!options.inline || outcome.kind !== 'images') return outcome;
      return { kind: 'images', images: outcome.images.map(({ imageURL: _url, ...image }) => ({ ...image, imageBase64Data: 'iVBORw0KGgo=' })) };
    },
  };
  return { dispatcher, jobs };
}

async function post(app: Awaited<ReturnType<typeof buildTestApp>>, tasks: unknown[]) {
  const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: authorized, payload: JSON.stringify(tasks) });
  return { status: response.statusCode, body: readTaskResponse(response.body) };
}

describe('a taskUUID sent again (idempotency)', () => {
  it('answers a finished sync task from its record and never generates it again', async () => {
    const { dispatcher, jobs } = countingDispatcher();
    const app = await buildTestApp({ dispatcher });
    const task = imageTask({ numberResults: 2, outputType: 'URL' });
    const first = await post(app, [task]);
    const again = await post(app, [task]);
    expect(again.status).toBe(200);
    expect(again.body.data).toEqual(first.body.data);
    expect(jobs).toHaveLength(1);
  });

  it('says resultNotKept (410) for a finished sync task whose inline images went out in its answer', async () => {
    const { dispatcher, jobs } = countingDispatcher({ inline: true });
    const app = await buildTestApp({ dispatcher });
    const task = imageTask({ outputType: 'base64Data' });
    const first = await post(app, [task]);
    const again = await post(app, [task]);
    expect(again.status).toBe(410);
    expect(again.body.errors).toEqual([expect.objectContaining({ code: 'resultNotKept', parameter: 'taskUUID', taskUUID: task['taskUUID'] })]);
    expect(again.body.errors[0]!.message).toContain(first.body.data[0]!.imageUUID);
    expect(jobs).toHaveLength(1);
  });

  it('attaches a resend of a running sync task to it: both get the same images, one job runs', async () => {
    let release: () => void = () => undefined;
    const { dispatcher, jobs } = countingDispatcher({ hold: new Promise<void>((resolve) => (release = resolve)) });
    const app = await buildTestApp({ dispatcher });
    const task = imageTask({ outputType: 'URL' });
    const first = post(app, [task]);
    await expect.poll(() => jobs.length).toBe(1);
    const second = post(app, [task]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(b.status).toBe(200);
    expect(b.body.data).toEqual(a.body.data);
    expect(jobs).toHaveLength(1);
  });

  it('refuses the same taskUUID with another body: taskUUIDConflict, 409, and the first task is untouched', async () => {
    const { dispatcher, jobs } = countingDispatcher();
    const app = await buildTestApp({ dispatcher });
    const task = imageTask({ outputType: 'URL' });
    const first = await post(app, [task]);
    const conflicting = await post(app, [{ ...task, positivePrompt: 'another prompt entirely' }]);
    expect(conflicting.status).toBe(409);
    expect(conflicting.body.errors).toEqual([expect.objectContaining({ code: 'taskUUIDConflict', parameter: 'taskUUID' })]);
    expect((await post(app, [{ taskType: 'getResponse', taskUUID: task['taskUUID'] }])).body.data[0]).toMatchObject({ imageUUID: first.body.data[0]!.imageUUID });
    expect(jobs).toHaveLength(1);
  });

  it('runs a task that failed again when it is sent again (a failure generated nothing)', async () => {
    let fail = true;
    const echo = createEchoDispatcher();
    const app = await buildTestApp({
      dispatcher: { dispatch: async (validated, context) => (fail ? { kind: 'failed', error: { code: 'workerFailed', message: 'down', retryable: true } } : echo.dispatch(validated, context)) },
    });
    const task = imageTask({ outputType: 'URL' });
    expect((await post(app, [task])).status).toBe(502);
    fail = false;
    expect((await post(app, [task])).status).toBe(200);
  });

  it('answers past SYNC_WAIT_LIMIT_SECONDS with taskStillProcessing (202); the task finishes and getResponse has it', async () => {
    let release: () => void = () => undefined;
    const { dispatcher, jobs } = countingDispatcher({ hold: new Promise<void>((resolve) => (release = resolve)) });
    const app = await buildTestApp({ dispatcher, config: { ...testConfig(), syncWaitLimitMs: 200 } });
    const task = imageTask({ outputType: 'URL' });
    const waited = await post(app, [task]);
    expect(waited.status).toBe(202);
    expect(waited.body.errors).toEqual([expect.objectContaining({ code: 'taskStillProcessing', taskUUID: task['taskUUID'], retryable: true })]);
    expect(waited.body.errors[0]!.message).toContain(`GET /v1/tasks/${String(task['taskUUID'])}`);
    release();
    await expect
      .poll(async () => (await post(app, [{ taskType: 'getResponse', taskUUID: task['taskUUID'] }])).body.data?.[0]?.status)
      .toBe('success');
    expect(jobs).toHaveLength(1);
  });

  it('keeps the tasks of one key apart from another key with the same taskUUID', async () => {
    const { dispatcher, jobs } = countingDispatcher();
    const other = 'other-key-0123456789abcdef';
    const app = await buildTestApp({ dispatcher, config: testConfig({ apiKeys: ['test-key-0123456789abcdef', other] }) });
    const task = imageTask({ outputType: 'URL', taskUUID: randomUUID() });
    await post(app, [task]);
    const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { ...authorized, authorization: `Bearer ${other}` }, payload: JSON.stringify([task]) });
    expect(response.statusCode).toBe(200);
    expect(jobs).toHaveLength(2);
  });

  it("runs a resent sync task whose first replica died: its record, abandoned after twice TASK_TIMEOUT_MS, is claimed again", async () => {
    const { dispatcher, jobs } = countingDispatcher();
    const config = { ...testConfig(), dispatch: { ...testConfig().dispatch, taskTimeoutMs: 300 } };
    const delivery = await createAsyncDelivery({ config, dispatcher, logger: { warn: () => undefined } });
    onTestFinished(() => delivery.close());
    const app = await buildTestApp({ dispatcher, delivery, config });
    const task = imageTask({ outputType: 'URL' });
    // The claim of a replica that died while running it.
    await delivery.ledger.claim(createHash('sha256').update(TEST_API_KEY).digest('hex'), { taskUUID: String(task['taskUUID']), taskType: 'imageInference', fingerprint: taskFingerprint(task), deliveryMethod: 'sync' });
    const started = Date.now();
    const answer = await post(app, [task]);
    expect(answer.status).toBe(200);
    expect(answer.body.data).toHaveLength(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    expect(jobs).toEqual([task['taskUUID']]);
  });
});
