import { describe, expect, it, onTestFinished } from 'vitest';
import { createHash } from 'node:crypto';
import { createAsyncDelivery } from '../../../src/async-delivery.js';
import type { Dispatcher } from '../../../src/contracts/dispatcher.js';
import { taskFingerprint } from '../../../src/tasks/image-inference/task-fingerprint.js';
import { authorized, buildTestApp, createEchoDispatcher, imageTask, readTaskResponse, TEST_API_KEY, testConfig } from '../../helper.js';

async function post(app: Awaited<ReturnType<typeof buildTestApp>>, tasks: unknown[]) {
  const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: authorized, payload: JSON.stringify(tasks) });
  return { status: response.statusCode, body: readTaskResponse(response.body) };
}

function heldDispatcher() {
  let release: () => void = () => undefined;
  const hold = new Promise<void>((resolve) => (release = resolve));
  const echo = createEchoDispatcher();
  const jobs: string[] = [];
  const dispatcher: Dispatcher = {
    async dispatch(validated, context) {
      jobs.push(validated.task.taskUUID);
      context.onProgress?.(1, 2);
      await hold;
      context.onProgress?.(2, 2);
      const outcome = await echo.dispatch(validated, context);
      return outcome.kind === 'images' ? { kind: 'images', images: outcome.images.map(({ imageURL: _url, ...image }) => ({ ...image, imageBase64Data: 'iVBORw0KGgo=' })) } : outcome;
    },
  };
  // A failing test must not leave its job held: the app's close waits for it.
  onTestFinished(() => release());
  return { dispatcher, jobs, release: () => release() };
}

describe('deliveryMethod "async" (in process)', () => {
  it('acknowledges at once in Runware\'s shape, then getResponse says processing, then gives the images with their bytes', async () => {
    const { dispatcher, jobs, release } = heldDispatcher();
    const app = await buildTestApp({ dispatcher });
    const task = imageTask({ deliveryMethod: 'async', outputType: 'base64Data', numberResults: 2 });
    const ack = await post(app, [task]);
    expect(ack.status).toBe(200);
    expect(ack.body.data).toEqual([{ taskType: 'imageInference', taskUUID: task['taskUUID'] }]);
    expect(ack.body.errors).toEqual([]);
    await expect.poll(() => jobs.length).toBe(1);
    const polled = await post(app, [{ taskType: 'getResponse', taskUUID: task['taskUUID'] }]);
    expect(polled.body.data).toEqual([{ taskType: 'imageInference', taskUUID: task['taskUUID'], status: 'processing' }]);
    release();
    await expect.poll(async () => (await post(app, [{ taskType: 'getResponse', taskUUID: task['taskUUID'] }])).body.data?.length).toBe(2);
    const done = await post(app, [{ taskType: 'getResponse', taskUUID: task['taskUUID'] }]);
    expect(done.body.data).toEqual([expect.objectContaining({ status: 'success', imageBase64Data: 'iVBORw0KGgo=', seed: 42 }), expect.objectContaining({ status: 'success', seed: 43 })]);
  });

  it('acknowledges a resend again without a second job, and a resend as sync answers from the record', async () => {
    const { dispatcher, jobs, release } = heldDispatcher();
    release();
    const app = await buildTestApp({ dispatcher });
    const task = imageTask({ deliveryMethod: 'async', outputType: 'base64Data' });
    await post(app, [task]);
    expect((await post(app, [task])).body.data).toEqual([{ taskType: 'imageInference', taskUUID: task['taskUUID'] }]);
    await expect.poll(async () => (await post(app, [{ taskType: 'getResponse', taskUUID: task['taskUUID'] }])).body.data?.[0]?.status).toBe('success');
    expect(jobs).toHaveLength(1);
  });

  it('refuses an invalid async task at once, with the same errors as a sync one', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const refused = await post(app, [imageTask({ deliveryMethod: 'async', width: 500 })]);
    expect(refused.status).toBe(400);
    expect(refused.body.errors).toEqual([expect.objectContaining({ parameter: 'width' })]);
  });

  it('refuses a webhookURL on a gateway without WEBHOOK_SIGNING_SECRET, rather than run without it', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const refused = await post(app, [imageTask({ deliveryMethod: 'async', webhookURL: 'https://hooks.example.com/clipgate' })]);
    expect(refused.status).toBe(400);
    expect(refused.body.errors).toEqual([expect.objectContaining({ code: 'webhooksNotConfigured', parameter: 'webhookURL' })]);
  });

  it('queues a resent async task again when its record says processing but its job was lost (a replica died between the two)', async () => {
    const { dispatcher, jobs, release } = heldDispatcher();
    release();
    const delivery = await createAsyncDelivery({ config: testConfig(), dispatcher, logger: { warn: () => undefined } });
    onTestFinished(() => delivery.close());
    const app = await buildTestApp({ dispatcher, delivery });
    const task = imageTask({ deliveryMethod: 'async' });
    // The claim of a replica that died before it queued the job.
    const principal = createHash('sha256').update(TEST_API_KEY).digest('hex');
    await delivery.ledger.claim(principal, { taskUUID: String(task['taskUUID']), taskType: 'imageInference', fingerprint: taskFingerprint(task), deliveryMethod: 'async' });
    expect((await post(app, [task])).body.data).toEqual([{ taskType: 'imageInference', taskUUID: task['taskUUID'] }]);
    await expect.poll(async () => (await post(app, [{ taskType: 'getResponse', taskUUID: task['taskUUID'] }])).body.data?.[0]?.status).toBe('success');
    expect(jobs).toEqual([task['taskUUID']]);
  });
});
