import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_API_KEY, EASY_NEGATIVE, FLUX, SD15, startClientStack, type ClientStack } from '../../support/client-stack.js';
import { runPythonClient } from '../../support/python-client.js';

/**
 * Runware's two published Python clients, installed from PyPI, pointed at clipgate with nothing changed but
 * their URLs: `runware` (WebSocket only) and `runware-sdk` (WebSocket by default, REST on request; both
 * send deliveryMethod "async" unless told otherwise, so these run their default async mode end to end:
 * clipgate acknowledges, and the image comes from the client's own getResponse polls).
 */

let stack: ClientStack;
let ws: string;
let http: string;

beforeAll(async () => {
  stack = await startClientStack();
  http = `http://127.0.0.1:${stack.gateways[0]!.port}/v1`;
  ws = `ws://127.0.0.1:${stack.gateways[0]!.port}/v1`;
}, 60_000);

afterAll(async () => {
  await stack.close();
});

const negativeEmbeddingTask = () => ({
  taskUUID: randomUUID(),
  positivePrompt: 'a lighthouse on a cliff at dusk, oil painting',
  model: SD15,
  width: 512,
  height: 512,
  embeddings: [{ model: EASY_NEGATIVE, weight: -1 }],
});

function jobOf(taskUUID: string) {
  return stack.worker.receivedJobs.find((job) => job.jobId.startsWith(taskUUID));
}

describe('runware (PyPI) against clipgate', () => {
  it('generates an image for an SD 1.5 task with a negative embedding', async () => {
    const task = negativeEmbeddingTask();
    const { outcome, stderr } = await runPythonClient('runware', { url: ws, apiKey: CLIENT_API_KEY, task });
    expect(outcome, stderr).toMatchObject({ images: [{ taskType: 'imageInference', taskUUID: task.taskUUID, imageURL: expect.stringContaining('/v1/images/'), seed: expect.any(Number) }] });
    expect(jobOf(task.taskUUID)?.embeddings).toEqual([expect.objectContaining({ air: EASY_NEGATIVE, placement: 'negative' })]);
  });

  it("shows clipgate's own message for an embedding on FLUX and for width 500", async () => {
    const flux = await runPythonClient('runware', { url: ws, apiKey: CLIENT_API_KEY, task: { ...negativeEmbeddingTask(), model: FLUX, width: 1024, height: 1024 } });
    expect(flux.outcome).toMatchObject({ error: { type: 'RunwareAPIError', code: 'unsupportedEmbeddingArchitecture', data: { parameter: 'embeddings' } } });
    expect(JSON.stringify(flux.outcome)).toContain('Embeddings cannot be used with model \\"runware:101@1\\"');
    const width = await runPythonClient('runware', { url: ws, apiKey: CLIENT_API_KEY, task: { ...negativeEmbeddingTask(), width: 500 } });
    expect(width.outcome).toMatchObject({ error: { code: 'invalidParameter', data: { parameter: 'width', message: 'width must be a multiple of 64; got 500 (nearest: 512).' } } });
  });
});

describe.each(['websocket', 'rest'] as const)('runware-sdk (PyPI) over %s against clipgate', (transport) => {
  const run = (task: Record<string, unknown>) => runPythonClient('runware-sdk', { transport, httpUrl: http, wsUrl: ws, apiKey: CLIENT_API_KEY, task: { taskType: 'imageInference', ...task } });

  it('generates an image for an SD 1.5 task with a negative embedding', async () => {
    const task = negativeEmbeddingTask();
    const { outcome, stderr } = await run(task);
    expect(outcome, stderr).toMatchObject({ images: [{ taskType: 'imageInference', taskUUID: task.taskUUID, imageURL: expect.stringContaining('/v1/images/'), seed: expect.any(Number) }] });
    expect(jobOf(task.taskUUID)?.embeddings).toEqual([expect.objectContaining({ air: EASY_NEGATIVE, placement: 'negative' })]);
  });

  it("shows clipgate's own message for an embedding on FLUX and for width 500", async () => {
    const flux = await run({ ...negativeEmbeddingTask(), model: FLUX, width: 1024, height: 1024 });
    expect(flux.outcome).toMatchObject({ error: { type: 'RunwareError', parameter: 'embeddings' } });
    expect((flux.outcome['error'] as { text: string }).text).toContain('Embeddings cannot be used with model "runware:101@1"');
    const width = await run({ ...negativeEmbeddingTask(), width: 500 });
    expect(width.outcome).toMatchObject({ error: { type: 'RunwareError', parameter: 'width', text: 'width must be a multiple of 64; got 500 (nearest: 512).' } });
  });
});
