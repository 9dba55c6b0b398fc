import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createCancellation, neverCancelled } from '../../src/contracts/cancellation.js';
import { runJob, type JobOutcome } from '../../src/dispatch/worker-client.js';
import { jobImageSchema, type JobRequest } from '../../src/dispatch/worker-protocol.js';

/**
 * runJob against a worker on loopback whose every answer is scripted: status, body chunks (split anywhere,
 * even inside a line) and pauses. The hand-written checks of the event stream are held to the protocol
 * schema here.
 */

interface Script {
  status?: number;
  /** Written in order; a number is a pause in milliseconds. The response ends after the last, unless `hang`. */
  chunks: (string | number)[];
  hang?: boolean;
}

let server: Server;
let pool: Pool;
let script: Script = { chunks: [] };
const received: string[] = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      received.push(body);
      const { status = 200, chunks, hang } = script;
      response.writeHead(status, { 'content-type': status === 200 ? 'application/x-ndjson' : 'application/json' });
      void (async () => {
        for (const chunk of chunks) {
          if (typeof chunk === 'number') await new Promise((resolve) => setTimeout(resolve, chunk));
          else if (!response.destroyed) response.write(chunk);
        }
        if (!hang && !response.destroyed) response.end();
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

afterAll(async () => {
  await pool.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const job: JobRequest = {
  jobId: '5f0c1b2a-3d4e-4f60-8a7b-9c0d1e2f3a4b.1',
  model: { air: 'civitai:4384@128713', family: 'sd1' },
  positivePrompt: 'a lighthouse',
  negativePrompt: '',
  width: 512,
  height: 512,
  steps: 20,
  cfgScale: 7,
  seed: '42',
  scheduler: 'Default',
  clipSkip: 0,
  numberResults: 1,
  outputFormat: 'PNG',
  embeddings: [],
};
const generous = { firstByteMs: 5000, progressMs: 5000, totalMs: 10_000 };
const roomy = { maxLineChars: 1024 * 1024 };
const image = { imageUUID: '60153644-dc91-4001-91df-010fb7203bf8', seed: '42', format: 'PNG', data: 'iVBORw0KGgo=' };
const line = (value: unknown) => `${JSON.stringify(value)}\n`;
const accepted = line({ event: 'accepted', jobId: job.jobId });
const result = (images: unknown) => line({ event: 'result', jobId: job.jobId, images, timings: { queueMs: 1, embeddingMs: 0, inferenceMs: 5, totalMs: 6 } });

async function run(next: Script, deadlines = generous, cancellation = neverCancelled, limits = roomy): Promise<JobOutcome> {
  script = next;
  return runJob(pool, job, deadlines, limits, cancellation);
}

describe('runJob', () => {
  it('sends the job as JSON and returns the images of a stream split anywhere, even inside a line', async () => {
    const stream = accepted + line({ event: 'progress', jobId: job.jobId, step: 1, steps: 20 }) + result([image]);
    const chunks = [stream.slice(0, 5), 2, stream.slice(5, 60), stream.slice(60, 61), 2, stream.slice(61)];
    await expect(run({ chunks })).resolves.toStrictEqual({ kind: 'result', images: [image] });
    expect(JSON.parse(received.at(-1) ?? '')).toStrictEqual(job);
  });

  it('takes a result exactly when its images satisfy the protocol schema', async () => {
    const variants: unknown[] = [
      [image],
      [image, { ...image, seed: '18446744073709551615', format: 'WEBP' }],
      [{ ...image, imageUUID: '00000000-0000-0000-0000-000000000000' }],
      [{ ...image, imageUUID: '60153644-dc91-9001-91df-010fb7203bf8' }],
      [{ ...image, imageUUID: 'not-a-uuid' }],
      [{ ...image, seed: '18446744073709551616' }],
      [{ ...image, seed: '99999999999999999999' }],
      [{ ...image, seed: '184467440737095516150' }],
      [{ ...image, seed: '-1' }],
      [{ ...image, seed: 42 }],
      [{ ...image, format: 'GIF' }],
      [{ ...image, data: '' }],
      [{ ...image, data: undefined }],
      [null],
      [],
      'images',
    ];
    const schema = z.array(jobImageSchema).min(1);
    for (const images of variants) {
      const outcome = await run({ chunks: [accepted, result(images)] });
      const valid = schema.safeParse(images).success;
      expect({ images, kind: outcome.kind }).toStrictEqual({ images, kind: valid ? 'result' : 'failed' });
      if (!valid) expect(outcome).toMatchObject({ reason: 'the worker sent an event that is not protocol v1', accepted: true, blame: 'worker' });
    }
  });

  it('reports a line that is not protocol v1, and a stream that ends without a result', async () => {
    await expect(run({ chunks: [accepted, 'not json\n', result([image])] })).resolves.toMatchObject({ kind: 'failed', reason: 'the worker sent an event that is not protocol v1' });
    await expect(run({ chunks: [accepted] })).resolves.toMatchObject({ kind: 'failed', reason: 'the worker ended the stream without a result', accepted: true, blame: 'worker' });
  });

  it('stops reading a stream at its first broken line, without waiting for the rest', async () => {
    const started = performance.now();
    await expect(run({ chunks: [accepted, '{"event": "progress", "jobId": \n', 5000, result([image])] })).resolves.toMatchObject({ kind: 'failed', blame: 'worker', accepted: true });
    expect(performance.now() - started).toBeLessThan(4000);
  });

  it('takes nothing after the final event: a second result breaks the stream', async () => {
    await expect(run({ chunks: [accepted, result([image]), result([image])] })).resolves.toMatchObject({ kind: 'failed', blame: 'worker', reason: 'the worker sent an event after the final one' });
    const cancelled = line({ event: 'error', jobId: job.jobId, error: { code: 'cancelled', message: 'x', retryable: false } });
    await expect(run({ chunks: [accepted, result([image]), cancelled] })).resolves.toMatchObject({ kind: 'failed', blame: 'worker' });
    // Blank lines are not events.
    await expect(run({ chunks: [accepted, result([image]), '\n\n'] })).resolves.toMatchObject({ kind: 'result' });
  });

  it('classifies error events: the task’s own fault, the worker’s, or nobody’s', async () => {
    const error = (code: string, retryable: boolean) => line({ event: 'error', jobId: job.jobId, error: { code, message: `${code} happened`, retryable } });
    await expect(run({ chunks: [accepted, error('embeddingShapeMismatch', false)] })).resolves.toMatchObject({ kind: 'rejected', error: { code: 'embeddingShapeMismatch' } });
    await expect(run({ chunks: [accepted, error('cudaOutOfMemory', true)] })).resolves.toMatchObject({ kind: 'failed', blame: 'worker', accepted: true });
    await expect(run({ chunks: [accepted, error('cancelled', false)] })).resolves.toMatchObject({ kind: 'failed', blame: 'none' });
  });

  it('classifies refusals by status and protocol error body', async () => {
    const body = (code: string, retryable: boolean) => JSON.stringify({ error: { code, message: `${code}!`, retryable } });
    await expect(run({ status: 503, chunks: [body('busy', true)] })).resolves.toMatchObject({ kind: 'failed', blame: 'none', accepted: false });
    await expect(run({ status: 400, chunks: [body('invalidJob', false)] })).resolves.toMatchObject({ kind: 'rejected', error: { code: 'invalidJob' } });
    await expect(run({ status: 404, chunks: [body('unknownModel', false)] })).resolves.toMatchObject({ kind: 'failed', blame: 'none', recheck: true });
    await expect(run({ status: 500, chunks: [body('internal', true)] })).resolves.toMatchObject({ kind: 'failed', blame: 'worker' });
    await expect(run({ status: 502, chunks: ['<html>bad gateway</html>'] })).resolves.toMatchObject({ kind: 'failed', blame: 'worker', reason: 'the worker answered 502 http502: no protocol error body' });
  });

  it('times out before the first byte, and after it on the total deadline', async () => {
    await expect(run({ chunks: [], hang: true }, { firstByteMs: 50, progressMs: 5000, totalMs: 5000 })).resolves.toStrictEqual({ kind: 'timeout', phase: 'firstByte' });
    const started = performance.now();
    await expect(run({ chunks: [accepted], hang: true }, { firstByteMs: 5000, progressMs: 5000, totalMs: 120 })).resolves.toStrictEqual({ kind: 'timeout', phase: 'total' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(115);
  });

  it('takes a worker that goes silent after accepted for hung, however long the total deadline', async () => {
    const progress = line({ event: 'progress', jobId: job.jobId, step: 1, steps: 20 });
    const started = performance.now();
    await expect(run({ chunks: [accepted], hang: true }, { firstByteMs: 5000, progressMs: 150, totalMs: 60_000 })).resolves.toStrictEqual({ kind: 'timeout', phase: 'progress' });
    expect(performance.now() - started).toBeLessThan(2000);
    // Every event, and every chunk of a long line, counts as a sign of life.
    const lively = [accepted, 100, progress, 100, progress, 100, result([image]).slice(0, 20), 100, result([image]).slice(20)];
    await expect(run({ chunks: lively }, { firstByteMs: 5000, progressMs: 150, totalMs: 60_000 })).resolves.toStrictEqual({ kind: 'result', images: [image] });
  });

  it('never takes an event of another job for this one’s', async () => {
    const foreign = line({ event: 'result', jobId: 'some-other-job.1', images: [image], timings: { queueMs: 1, embeddingMs: 0, inferenceMs: 5, totalMs: 6 } });
    await expect(run({ chunks: [accepted, foreign] })).resolves.toMatchObject({ kind: 'failed', blame: 'worker', accepted: true, reason: expect.stringContaining('some-other-job.1') });
    await expect(run({ chunks: [line({ event: 'accepted', jobId: 'some-other-job.1' }), result([image])] })).resolves.toMatchObject({ kind: 'failed', blame: 'worker', accepted: false });
  });

  it('refuses a line longer than the job can need, as it arrives, without buffering the rest', async () => {
    const big = result([{ ...image, data: 'A'.repeat(300_000) }]);
    const chunks = [accepted, ...Array.from({ length: 10 }, (_, index) => big.slice(index * 40_000, (index + 1) * 40_000)), 5000, big.slice(400_000)];
    const started = performance.now();
    const outcome = await run({ chunks, hang: true }, generous, neverCancelled, { maxLineChars: 100_000 });
    expect(outcome).toMatchObject({ kind: 'failed', blame: 'worker', reason: expect.stringContaining('longer than 100000 characters') });
    // Refused before the pause: the stream was cut off, not read to its end.
    expect(performance.now() - started).toBeLessThan(4000);
    await expect(run({ chunks: [accepted, big] }, generous, neverCancelled, { maxLineChars: 400_000 })).resolves.toMatchObject({ kind: 'result' });
  });

  it('ends with `cancelled` when the client goes away mid-stream, and not at all when cancelled before', async () => {
    const cancellation = createCancellation();
    const outcome = run({ chunks: [accepted], hang: true }, generous, cancellation);
    setTimeout(() => cancellation.cancel(new Error('the client disconnected')), 30);
    await expect(outcome).resolves.toStrictEqual({ kind: 'cancelled' });

    const sent = received.length;
    await expect(run({ chunks: [accepted, result([image])] }, generous, cancellation)).resolves.toStrictEqual({ kind: 'cancelled' });
    expect(received.length).toBe(sent);
  });
});
