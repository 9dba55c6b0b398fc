import { randomUUID } from 'node:crypto';
import { Runware } from '@runware/sdk-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_API_KEY, EASY_NEGATIVE, FLUX, SD15, startClientStack, type ClientStack } from '../../support/client-stack.js';
import { until } from '../../support/gateway.js';

/**
 * @runware/sdk-js, as published on npm, pointed at clipgate with nothing changed but its URL. It speaks only
 * WebSocket (Runware-server.ts: `new WebSocket(url + '?sdk=js&version=…')`).
 */

type RunwareClient = InstanceType<typeof Runware>;

let stack: ClientStack;
const clients: RunwareClient[] = [];

beforeAll(async () => {
  stack = await startClientStack();
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((client) => client.disconnect()));
  await stack.close();
});

async function connect(port = stack.gateways[0]!.port): Promise<RunwareClient> {
  const client = new Runware({ apiKey: CLIENT_API_KEY, url: `ws://127.0.0.1:${port}/v1` });
  clients.push(client);
  await client.ensureConnection();
  return client;
}

/** What sdk-js throws for a task the server refused: the server's error object, under `error`. */
async function refusal(promise: Promise<unknown>): Promise<{ code: string; message: string; parameter?: string; taskUUID?: string }> {
  try {
    await promise;
  } catch (thrown) {
    return (thrown as { error: { code: string; message: string; parameter?: string; taskUUID?: string } }).error;
  }
  throw new Error('the task was not refused');
}

describe('@runware/sdk-js against clipgate', () => {
  it('generates an image for an SD 1.5 task with a negative embedding', async () => {
    const runware = await connect();
    const taskUUID = randomUUID();
    const images = await runware.imageInference({
      taskUUID,
      positivePrompt: 'a lighthouse on a cliff at dusk, oil painting',
      model: SD15,
      width: 512,
      height: 512,
      outputType: 'URL',
      outputFormat: 'PNG',
      embeddings: [{ model: EASY_NEGATIVE, weight: -1 }],
    });
    expect(images).toHaveLength(1);
    const [image] = images ?? [];
    expect(image).toMatchObject({ taskType: 'imageInference', taskUUID, imageUUID: expect.any(String), seed: expect.any(Number) });
    // The URL serves the image the worker made.
    const download = await fetch(image!.imageURL!);
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer()).subarray(1, 4).toString()).toBe('PNG');
    // The embedding reached the worker as a negative one.
    const job = stack.worker.receivedJobs.find((received) => received.jobId.startsWith(taskUUID));
    expect(job?.embeddings).toEqual([expect.objectContaining({ air: EASY_NEGATIVE, placement: 'negative', weight: 1 })]);
  });

  it("shows clipgate's own message for an embedding on FLUX and for width 500", async () => {
    const runware = await connect();
    const flux = await refusal(runware.imageInference({ positivePrompt: 'a lighthouse', model: FLUX, width: 1024, height: 1024, embeddings: [{ model: EASY_NEGATIVE, weight: 1 }] }));
    expect(flux).toMatchObject({ code: 'unsupportedEmbeddingArchitecture', parameter: 'embeddings' });
    expect(flux.message).toContain('Embeddings cannot be used with model "runware:101@1"');
    const width = await refusal(runware.imageInference({ positivePrompt: 'a lighthouse', model: SD15, width: 500, height: 512 }));
    expect(width).toMatchObject({ code: 'invalidParameter', parameter: 'width' });
    expect(width.message).toBe('width must be a multiple of 64; got 500 (nearest: 512).');
  });

  it('reads a finished task back with its own getResponse, from another connection', async () => {
    const runware = await connect();
    const taskUUID = randomUUID();
    const images = await runware.imageInference({ taskUUID, positivePrompt: 'a red barn', model: SD15, width: 512, height: 512, numberResults: 2, outputType: 'URL', outputFormat: 'PNG' });
    const later = await connect();
    const answers = (await later.getResponse({ taskUUID })) as unknown as { status: string; imageUUID: string; taskUUID: string }[];
    expect(answers.map((answer) => [answer.status, answer.taskUUID])).toEqual([
      ['success', taskUUID],
      ['success', taskUUID],
    ]);
    expect(answers.map((answer) => answer.imageUUID).sort()).toEqual((images ?? []).map((image) => image.imageUUID).sort());
    expect(await refusal(later.getResponse({ taskUUID: randomUUID() }))).toMatchObject({ code: 'taskNotFound' });
  });

  it('runs a deliveryMethod "async" task: the acknowledgement first, then its own getResponse finds the images', async () => {
    const runware = await connect();
    const taskUUID = randomUUID();
    const ack = await runware.imageInference({ taskUUID, positivePrompt: 'a harbour at night', model: SD15, width: 512, height: 512, numberResults: 2, deliveryMethod: 'async' } as Parameters<RunwareClient['imageInference']>[0]);
    expect(ack).toEqual([expect.objectContaining({ taskType: 'imageInference', taskUUID })]);
    expect(ack?.[0]).not.toHaveProperty('imageUUID');
    // 1.3.2's pollForAsyncResults is private: a caller polls getResponse, as it does.
    let images: { taskUUID: string; status: string; imageUUID: string }[] = [];
    await until(async () => {
      images = (await runware.getResponse({ taskUUID })) as unknown as typeof images;
      return images.length === 2 && images.every((image) => image.status === 'success');
    }, 10_000);
    expect(images.map((image) => [image.taskUUID, image.status])).toEqual([
      [taskUUID, 'success'],
      [taskUUID, 'success'],
    ]);
    expect(new Set(images.map((image) => image.imageUUID)).size).toBe(2);
    expect(stack.worker.receivedJobs.filter((job) => job.jobId.startsWith(taskUUID))).toHaveLength(1);
  });

  it('receives numberResults 3 as three partial images, one frame each', async () => {
    const runware = await connect();
    const partials: number[] = [];
    const images = await runware.imageInference({
      positivePrompt: 'three lighthouses',
      model: SD15,
      width: 256,
      height: 256,
      numberResults: 3,
      seed: 7,
      onPartialImages: (partial) => partials.push(partial.length),
    });
    expect(partials).toEqual([1, 1, 1]);
    expect(images?.map((image) => image.seed).sort()).toEqual([7, 8, 9]);
    expect(new Set(images?.map((image) => image.imageUUID)).size).toBe(3);
  });
});
