import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { crc32, inflateSync } from 'node:zlib';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  jobEventSchema,
  workerErrorBodySchema,
  workerHealthSchema,
  WORKER_PROTOCOL_VERSION,
  type JobEvent,
  type JobRequest,
} from '../../src/dispatch/worker-protocol.js';
import { startFakeWorker, type FakeWorker, type FakeWorkerOptions } from './fake-worker.js';
import { pngSignature, seedColour, tinyImage, tinyPngSide } from './tiny-images.js';

const workers: FakeWorker[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
});

async function startWorker(options?: FakeWorkerOptions): Promise<FakeWorker> {
  const worker = await startFakeWorker(options);
  workers.push(worker);
  return worker;
}

const sd15 = 'civitai:4384@128713';
const sdxl = 'civitai:101055@128078';

function jobRequest(overrides: Partial<JobRequest> = {}): JobRequest {
  return {
    jobId: randomUUID(),
    model: { air: sd15, family: 'sd1' },
    positivePrompt: 'a lighthouse on a cliff at dusk, oil painting',
    negativePrompt: '',
    width: 512,
    height: 768,
    steps: 20,
    cfgScale: 7,
    seed: '42',
    scheduler: 'EulerDiscreteScheduler',
    clipSkip: 0,
    numberResults: 1,
    outputFormat: 'PNG',
    embeddings: [
      {
        air: 'civitai:7808@9208',
        sha256: 'ab'.repeat(32),
        url: `http://127.0.0.1:8080/v1/embeddings/${'ab'.repeat(32)}.safetensors`,
        weight: 1,
        placement: 'negative',
        vectors: 8,
        family: 'sd1',
      },
    ],
    ...overrides,
  };
}

function postJob(worker: FakeWorker, body: unknown, options: { signal?: AbortSignal } = {}) {
  return request(`${worker.url}/v1/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...options,
  });
}

function cancelJob(worker: FakeWorker, jobId: string) {
  return request(`${worker.url}/v1/jobs/${encodeURIComponent(jobId)}`, { method: 'DELETE' });
}

/** A job over node:http, without keep-alive: 'complete' when its stream ended normally, 'broken' otherwise. */
function rawJob(worker: FakeWorker, job: JobRequest): Promise<'complete' | 'broken'> {
  return new Promise((resolve) => {
    const outgoing = httpRequest(`${worker.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, agent: false }, (response) => {
      response.on('error', () => resolve('broken'));
      response.on('close', () => resolve(response.complete ? 'complete' : 'broken'));
      response.resume();
    });
    outgoing.on('error', () => resolve('broken'));
    outgoing.end(JSON.stringify(job));
  });
}

async function health(worker: FakeWorker) {
  const response = await request(`${worker.url}/v1/health`);
  return { status: response.statusCode, body: (await response.body.json()) as unknown };
}

/** NDJSON lines as they arrive; each must end with a newline. */
async function* lines(body: AsyncIterable<Buffer>): AsyncGenerator<string> {
  let pending = '';
  for await (const chunk of body) {
    pending += chunk.toString('utf8');
    for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n')) {
      yield pending.slice(0, end);
      pending = pending.slice(end + 1);
    }
  }
  expect(pending).toBe('');
}

function parseEvent(line: string): JobEvent {
  return jobEventSchema.parse(JSON.parse(line));
}

async function readEvents(body: AsyncIterable<Buffer>): Promise<JobEvent[]> {
  const events: JobEvent[] = [];
  for await (const line of lines(body)) events.push(parseEvent(line));
  return events;
}

async function nextEvent(stream: AsyncGenerator<string>): Promise<JobEvent> {
  const next = await stream.next();
  if (next.done) throw new Error('the stream ended');
  return parseEvent(next.value);
}

async function expectRefusal(response: Awaited<ReturnType<typeof postJob>>, status: number, code: string, retryable: boolean): Promise<void> {
  expect(response.statusCode).toBe(status);
  expect(response.headers['content-type']).toBe('application/json');
  const body = workerErrorBodySchema.parse(await response.body.json());
  expect(body.error).toMatchObject({ code, retryable });
  expect(body.error.message.length).toBeGreaterThan(0);
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Checks every chunk's CRC and returns IHDR's size and the first pixel of the inflated IDAT. */
function decodePng(bytes: Buffer): { width: number; height: number; colourType: number; firstPixel: number[]; chunks: string[] } {
  expect(bytes.subarray(0, 8)).toEqual(Buffer.from(pngSignature));
  const chunks: string[] = [];
  let header: Buffer | undefined;
  const idat: Buffer[] = [];
  for (let offset = 8; offset < bytes.length; ) {
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    expect(bytes.readUInt32BE(offset + 8 + length)).toBe(crc32(bytes.subarray(offset + 4, offset + 8 + length)));
    chunks.push(type);
    if (type === 'IHDR') header = data;
    if (type === 'IDAT') idat.push(data);
    offset += 12 + length;
  }
  if (!header) throw new Error('no IHDR');
  const width = header.readUInt32BE(0);
  const raw = inflateSync(Buffer.concat(idat));
  expect(raw.length).toBe((1 + width * 3) * header.readUInt32BE(4));
  return { width, height: header.readUInt32BE(4), colourType: header[9] ?? -1, firstPixel: [...raw.subarray(1, 4)], chunks };
}

function expectJpeg(bytes: Buffer): void {
  expect([...bytes.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
  expect([...bytes.subarray(-2)]).toEqual([0xff, 0xd9]);
}

function expectWebp(bytes: Buffer): void {
  expect(bytes.toString('latin1', 0, 4)).toBe('RIFF');
  expect(bytes.readUInt32LE(4)).toBe(bytes.length - 8);
  expect(bytes.toString('latin1', 8, 15)).toBe('WEBPVP8');
}

describe('tiny images', () => {
  it('encodes a valid 8×8 RGB PNG whose colour follows the seed', () => {
    const first = decodePng(Buffer.from(tinyImage('PNG', 0n)));
    expect(first).toMatchObject({ width: tinyPngSide, height: tinyPngSide, colourType: 2, chunks: ['IHDR', 'IDAT', 'IEND'] });
    expect(first.firstPixel).toEqual(seedColour(0n));
    expect(decodePng(Buffer.from(tinyImage('PNG', 1n))).firstPixel).not.toEqual(first.firstPixel);
  });

  it('has a JPEG and a WEBP with their magic bytes, copied on every call', () => {
    expectJpeg(Buffer.from(tinyImage('JPG', 0n)));
    expectWebp(Buffer.from(tinyImage('WEBP', 0n)));
    const copy = tinyImage('JPG', 0n);
    copy[0] = 0;
    expectJpeg(Buffer.from(tinyImage('JPG', 0n)));
  });
});

describe('fake worker: health', () => {
  it('reports protocol, status, families, models, concurrency and load', async () => {
    const worker = await startWorker();
    const first = await health(worker);
    expect(first.status).toBe(200);
    expect(workerHealthSchema.parse(first.body)).toEqual({
      protocol: WORKER_PROTOCOL_VERSION,
      status: 'ready',
      families: ['sd1', 'sdxl'],
      models: [
        { air: sd15, family: 'sd1', loaded: true },
        { air: sdxl, family: 'sdxl', loaded: false },
      ],
      maxConcurrency: 4,
      load: { running: 0, queued: 0 },
    });

    worker.setModelLoaded(sdxl, true);
    worker.setBehaviour({ healthStatus: 'draining' });
    const second = workerHealthSchema.parse((await health(worker)).body);
    expect(second.status).toBe('draining');
    expect(second.models.every((model) => model.loaded)).toBe(true);

    worker.setBehaviour({ healthFails: true });
    const failed = await health(worker);
    expect(failed.status).toBe(500);
    expect(workerErrorBodySchema.parse(failed.body).error.retryable).toBe(true);
    expect(worker.stats.healthChecks()).toBe(3);
    expect(() => worker.setModelLoaded('civitai:1@1', true)).toThrow(/does not serve/);
  });

  it('serves the models it is given', async () => {
    const worker = await startWorker({ models: [{ air: 'civitai:1@2', family: 'sdxl' }], maxConcurrency: 2 });
    expect(workerHealthSchema.parse((await health(worker)).body)).toMatchObject({
      families: ['sdxl'],
      models: [{ air: 'civitai:1@2', family: 'sdxl', loaded: false }],
      maxConcurrency: 2,
    });
  });
});

describe('fake worker: jobs', () => {
  it('streams accepted, progress, then a result with exact wrapped seeds and real PNGs', async () => {
    const worker = await startWorker();
    worker.setBehaviour({ latencyMs: 150, progressEveryMs: 30 });
    const job = jobRequest({ seed: '18446744073709551615', numberResults: 2 });
    const response = await postJob(worker, job);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/x-ndjson');
    expect(response.headers['transfer-encoding']).toBe('chunked');
    const events = await readEvents(response.body);

    expect(events[0]).toEqual({ event: 'accepted', jobId: job.jobId });
    const progress = events.slice(1, -1);
    expect(progress.length).toBeGreaterThan(0);
    const steps = progress.map((event) => (event.event === 'progress' ? event.step : -1));
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    for (const event of progress) expect(event).toMatchObject({ event: 'progress', jobId: job.jobId, steps: 20 });
    expect(Math.max(...steps)).toBeLessThanOrEqual(20);

    const result = events.at(-1);
    if (result?.event !== 'result') throw new Error(`expected a result, got ${JSON.stringify(result)}`);
    expect(result.jobId).toBe(job.jobId);
    expect(result.images.map((image) => image.seed)).toEqual(['18446744073709551615', '0']);
    expect(new Set(result.images.map((image) => image.imageUUID)).size).toBe(2);
    for (const image of result.images) {
      expect(image.format).toBe('PNG');
      const png = decodePng(Buffer.from(image.data, 'base64'));
      expect(png).toMatchObject({ width: 8, height: 8, colourType: 2 });
      expect(png.firstPixel).toEqual(seedColour(BigInt(image.seed)));
    }
    expect(result.timings.inferenceMs).toBeGreaterThanOrEqual(100);
    expect(result.timings.totalMs).toBeGreaterThanOrEqual(result.timings.inferenceMs);

    expect(worker.stats.jobs()).toBe(1);
    expect(worker.stats.accepted()).toBe(1);
    expect(worker.stats.completed()).toBe(1);
    expect(worker.stats.running()).toBe(0);
    expect(worker.stats.jobsWithId(job.jobId)).toBe(1);
    expect(worker.receivedJobs).toEqual([job]);
  });

  it('answers JPG and WEBP jobs with real images of those formats', async () => {
    const worker = await startWorker();
    for (const [format, check] of [
      ['JPG', expectJpeg],
      ['WEBP', expectWebp],
    ] as const) {
      const response = await postJob(worker, jobRequest({ outputFormat: format, model: { air: sdxl, family: 'sdxl' }, numberResults: 3 }));
      const events = await readEvents(response.body);
      expect(events.map((event) => event.event)).toEqual(['accepted', 'result']);
      const result = events[1];
      if (result?.event !== 'result') throw new Error('no result');
      expect(result.images.map((image) => image.seed)).toEqual(['42', '43', '44']);
      for (const image of result.images) {
        expect(image.format).toBe(format);
        check(Buffer.from(image.data, 'base64'));
      }
    }
  });

  it('ends the stream with the configured error event instead of a result', async () => {
    const worker = await startWorker();
    const error = { code: 'embeddingShapeMismatch', message: 'clip_l is 1024 wide, the text encoder takes 768', retryable: false };
    worker.setBehaviour({ errorEvent: error, latencyMs: 20 });
    const job = jobRequest();
    const events = await readEvents((await postJob(worker, job)).body);
    expect(events).toEqual([
      { event: 'accepted', jobId: job.jobId },
      { event: 'error', jobId: job.jobId, error },
    ]);
    expect(worker.stats.completed()).toBe(0);

    worker.setBehaviour({ errorEvent: undefined });
    expect((await readEvents((await postJob(worker, jobRequest())).body)).at(-1)?.event).toBe('result');
  });

  it('waits acceptDelayMs before the first byte', async () => {
    const worker = await startWorker();
    worker.setBehaviour({ acceptDelayMs: 120 });
    const started = performance.now();
    const response = await postJob(worker, jobRequest());
    expect(performance.now() - started).toBeGreaterThanOrEqual(100);
    const result = (await readEvents(response.body)).at(-1);
    expect(result?.event === 'result' && result.timings.queueMs).toBeGreaterThanOrEqual(100);
  });
});

describe('fake worker: refusals', () => {
  it('answers each refusal with its status and a WorkerErrorBody', async () => {
    const worker = await startWorker({ maxConcurrency: 1 });
    await expectRefusal(await postJob(worker, 'not json'), 400, 'invalidJob', false);
    await expectRefusal(await postJob(worker, { ...jobRequest(), width: 100 }), 400, 'invalidJob', false);
    await expectRefusal(await postJob(worker, jobRequest({ model: { air: 'civitai:1@1', family: 'sd1' } })), 422, 'unknownModel', false);

    worker.setBehaviour({ healthStatus: 'starting' });
    await expectRefusal(await postJob(worker, jobRequest()), 503, 'notReady', true);
    worker.setBehaviour({ healthStatus: 'ready', hangAfterAccept: true });

    const held = jobRequest();
    const heldResponse = await postJob(worker, held);
    expect(heldResponse.statusCode).toBe(200);
    await expectRefusal(await postJob(worker, held), 409, 'duplicateJob', false);
    await expectRefusal(await postJob(worker, jobRequest()), 429, 'busy', true);
    expect(worker.stats.jobsWithId(held.jobId)).toBe(2);
    expect((await cancelJob(worker, held.jobId)).statusCode).toBe(204);
    await heldResponse.body.text();

    worker.setBehaviour({ hangAfterAccept: false, failureRate: 1 });
    await expectRefusal(await postJob(worker, jobRequest()), 500, 'internal', true);
    worker.setBehaviour({ failStatus: 502 });
    await expectRefusal(await postJob(worker, jobRequest()), 502, 'internal', true);

    expect(worker.stats.jobs()).toBe(9);
    expect(worker.stats.accepted()).toBe(1);
    expect(worker.stats.running()).toBe(0);
  });

  it('answers 404 JSON to unknown routes and to cancelling a job it is not running', async () => {
    const worker = await startWorker();
    for (const [method, path] of [
      ['GET', '/'],
      ['GET', '/v1/jobs'],
      ['POST', '/v1/health'],
      ['DELETE', '/v1/jobs/a/b'],
    ] as const) {
      const response = await request(`${worker.url}${path}`, { method });
      await expectRefusal(response, 404, 'notFound', false);
    }
    await expectRefusal(await cancelJob(worker, 'never-sent'), 404, 'unknownJob', false);
    expect(worker.stats.cancels()).toEqual(['never-sent']);
  });

  it('draws injected failures from the injected random source, in arrival order', async () => {
    const draws = [0.1, 0.9, 0.4, 0.6];
    const worker = await startWorker({ random: () => draws.shift() ?? 1 });
    worker.setBehaviour({ failureRate: 0.5 });
    const statuses: number[] = [];
    for (let index = 0; index < 4; index += 1) {
      const response = await postJob(worker, jobRequest());
      statuses.push(response.statusCode);
      await response.body.text();
    }
    expect(statuses).toEqual([500, 200, 500, 200]);
    expect(worker.stats.accepted()).toBe(2);
    expect(worker.stats.completed()).toBe(2);
  });

  it('repeats the same failures run after run with its default seeded random', async () => {
    const outcomes = async (): Promise<number[]> => {
      const worker = await startWorker();
      worker.setBehaviour({ failureRate: 0.5 });
      const statuses: number[] = [];
      for (let index = 0; index < 12; index += 1) {
        const response = await postJob(worker, jobRequest());
        statuses.push(response.statusCode);
        await response.body.text();
      }
      return statuses;
    };
    const first = await outcomes();
    expect(first).toContain(500);
    expect(first).toContain(200);
    expect(await outcomes()).toEqual(first);
  });
});

describe('fake worker: cancellation and failures mid-job', () => {
  it('cancels a job that hangs after accepted: cancelled error event, freed slot, 204', async () => {
    const worker = await startWorker();
    worker.setBehaviour({ hangAfterAccept: true });
    const job = jobRequest();
    const response = await postJob(worker, job);
    const stream = lines(response.body);
    expect(await nextEvent(stream)).toEqual({ event: 'accepted', jobId: job.jobId });
    expect(worker.stats.running()).toBe(1);

    const cancel = await cancelJob(worker, job.jobId);
    expect(cancel.statusCode).toBe(204);
    await cancel.body.text();
    expect(await nextEvent(stream)).toMatchObject({ event: 'error', jobId: job.jobId, error: { code: 'cancelled', retryable: false } });
    expect((await stream.next()).done).toBe(true);
    expect(worker.stats.running()).toBe(0);
    expect(worker.stats.cancels()).toEqual([job.jobId]);
    await expectRefusal(await cancelJob(worker, job.jobId), 404, 'unknownJob', false);
    expect(worker.stats.cancels()).toEqual([job.jobId, job.jobId]);
  });

  it('cancels a job still in its accept delay: the stream holds only the cancelled event', async () => {
    const worker = await startWorker();
    worker.setBehaviour({ acceptDelayMs: 10_000 });
    const job = jobRequest();
    const pending = postJob(worker, job);
    await until(() => worker.stats.running() === 1);
    expect((await cancelJob(worker, job.jobId)).statusCode).toBe(204);
    const response = await pending;
    expect(response.statusCode).toBe(200);
    const events = await readEvents(response.body);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ event: 'error', error: { code: 'cancelled' } });
    expect(worker.stats.accepted()).toBe(0);
  });

  it('crashAfterAccept breaks the stream after accepted: the client gets a socket error', async () => {
    const worker = await startWorker();
    worker.setBehaviour({ crashAfterAccept: true, latencyMs: 50 });
    const job = jobRequest();
    const response = await postJob(worker, job);
    expect(response.statusCode).toBe(200);
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const line of lines(response.body)) seen.push(line);
      })(),
    ).rejects.toMatchObject({ code: 'UND_ERR_SOCKET' });
    expect(seen.map(parseEvent)).toEqual([{ event: 'accepted', jobId: job.jobId }]);
    expect(worker.stats.accepted()).toBe(1);
    expect(worker.stats.completed()).toBe(0);
    expect(worker.stats.running()).toBe(0);

    worker.setBehaviour({ crashAfterAccept: false });
    expect((await readEvents((await postJob(worker, jobRequest())).body)).at(-1)?.event).toBe('result');
  });

  it('frees the slot when the client hangs up mid-job', async () => {
    const worker = await startWorker();
    worker.setBehaviour({ latencyMs: 10_000, progressEveryMs: 20 });
    const response = await postJob(worker, jobRequest());
    const stream = lines(response.body);
    await nextEvent(stream);
    expect(worker.stats.running()).toBe(1);
    response.body.destroy();
    await until(() => worker.stats.running() === 0);
    expect(worker.stats.completed()).toBe(0);
  });

  it('hang reads the job and never answers', async () => {
    const worker = await startWorker();
    worker.setBehaviour({ hang: true });
    const job = jobRequest();
    await expect(postJob(worker, job, { signal: AbortSignal.timeout(150) })).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(worker.stats.jobs()).toBe(1);
    expect(worker.stats.running()).toBe(0);
    expect(worker.receivedJobs).toEqual([job]);
  });
});

describe('fake worker: death and restart', () => {
  it('kill() breaks open streams and refuses connections; restart() serves again on the same port', async () => {
    const worker = await startWorker();
    worker.setBehaviour({ hangAfterAccept: true });
    const response = await postJob(worker, jobRequest());
    const stream = lines(response.body);
    expect((await nextEvent(stream)).event).toBe('accepted');

    await worker.kill();
    await expect(stream.next()).rejects.toMatchObject({ code: 'UND_ERR_SOCKET' });
    await expect(request(`${worker.url}/v1/health`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(worker.stats.running()).toBe(0);
    await worker.kill();

    const url = worker.url;
    await worker.restart();
    expect(worker.url).toBe(url);
    await expect(worker.restart()).rejects.toThrow(/kill\(\) it before restart/);
    expect((await health(worker)).status).toBe(200);
    worker.setBehaviour({ hangAfterAccept: false });
    expect((await readEvents((await postJob(worker, jobRequest())).body)).at(-1)?.event).toBe('result');
    expect(worker.stats.jobs()).toBe(2);
  });

  it('close() ends running jobs and leaves no timers behind', async () => {
    // node:http here, not undici: undici's own coarse timer would blur the count of the fake's timers.
    const timers = (): number => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
    const worker = await startFakeWorker();
    const before = timers();
    worker.setBehaviour({ latencyMs: 60_000, progressEveryMs: 1000 });
    const streams = [rawJob(worker, jobRequest()), rawJob(worker, jobRequest())];
    await until(() => worker.stats.accepted() === 2);
    worker.setBehaviour({ acceptDelayMs: 60_000 });
    const delayed = rawJob(worker, jobRequest());
    await until(() => worker.stats.running() === 3);
    expect(timers()).toBeGreaterThanOrEqual(before + 5);

    await worker.close();
    expect(worker.stats.running()).toBe(0);
    expect(await Promise.all([...streams, delayed])).toEqual(['broken', 'broken', 'broken']);
    expect(timers()).toBeLessThanOrEqual(before);
    await expect(worker.restart()).rejects.toThrow(/closed/);
  });
});

describe('fake worker: concurrency', () => {
  it('holds at most maxConcurrency jobs: 10 at once on 4 slots give 4 streams and 6 × 429', async () => {
    const worker = await startWorker({ maxConcurrency: 4 });
    worker.setBehaviour({ hangAfterAccept: true });
    const jobs = Array.from({ length: 10 }, () => jobRequest());
    const responses = await Promise.all(jobs.map((job) => postJob(worker, job)));
    const statuses = responses.map((response) => response.statusCode);
    expect(statuses.filter((status) => status === 200)).toHaveLength(4);
    expect(statuses.filter((status) => status === 429)).toHaveLength(6);
    expect(worker.stats.running()).toBe(4);
    expect(worker.stats.peakRunning()).toBe(4);
    expect(workerHealthSchema.parse((await health(worker)).body).load).toEqual({ running: 4, queued: 0 });

    for (const [index, response] of responses.entries()) {
      const job = jobs[index];
      if (!job) throw new Error('no job');
      if (response.statusCode === 429) {
        await expectRefusal(response, 429, 'busy', true);
        continue;
      }
      expect((await cancelJob(worker, job.jobId)).statusCode).toBe(204);
      expect((await readEvents(response.body)).map((event) => event.event)).toEqual(['accepted', 'error']);
    }
    expect(worker.stats.running()).toBe(0);

    worker.setBehaviour({ hangAfterAccept: false, latencyMs: 200 });
    const second = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const response = await postJob(worker, jobRequest());
        if (response.statusCode !== 200) {
          await response.body.text();
          return response.statusCode;
        }
        expect((await readEvents(response.body)).at(-1)?.event).toBe('result');
        return 200;
      }),
    );
    const completed = second.filter((status) => status === 200).length;
    expect(completed).toBeGreaterThanOrEqual(4);
    expect(completed + second.filter((status) => status === 429).length).toBe(10);
    expect(worker.stats.completed()).toBe(completed);
    expect(worker.stats.peakRunning()).toBe(4);
    expect(worker.stats.running()).toBe(0);
    expect(worker.stats.jobs()).toBe(20);
  });

  it('keeps only the most recent job requests', async () => {
    const worker = await startWorker({ maxConcurrency: 64 });
    const sent: string[] = [];
    for (let batch = 0; batch < 22; batch += 1) {
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          const job = jobRequest({ embeddings: [] });
          sent.push(job.jobId);
          await (await postJob(worker, job)).body.text();
        }),
      );
    }
    expect(worker.stats.jobs()).toBe(1100);
    expect(worker.receivedJobs.length).toBeGreaterThanOrEqual(500);
    expect(worker.receivedJobs.length).toBeLessThanOrEqual(1000);
    // Jobs of one batch arrive in any order; the log holds the newest batches.
    expect(sent.slice(-50)).toContain(worker.receivedJobs.at(-1)?.jobId);
    const recent = new Set(sent.slice(-1000));
    expect(worker.receivedJobs.every((job) => recent.has(job.jobId))).toBe(true);
  });
});

describe('the fake worker with a simulated GPU', () => {
  it('runs one job at a time, charging steps and a swap for a model not loaded, and keeps the most recent models loaded', async () => {
    const worker = await startWorker({
      maxConcurrency: 8,
      models: [
        { air: sd15, family: 'sd1', loaded: true },
        { air: sdxl, family: 'sdxl', loaded: false },
      ],
      gpu: { stepMs: 2, swapMs: 50, maxLoadedModels: 1 },
    });
    const finishedAt: number[] = [];
    const started = performance.now();
    const run = async (air: string, family: 'sd1' | 'sdxl') => {
      const response = await postJob(worker, jobRequest({ model: { air, family }, steps: 10 }));
      const text = await response.body.text();
      expect(text).toContain('"event":"result"');
      finishedAt.push(performance.now() - started);
    };
    // Sent 5 ms apart, so they arrive in this order while the first still runs: SD 1.5 (loaded: 20 ms), SDXL (a
    // swap: 70 ms), SD 1.5 again (swapped out meanwhile: 70 ms).
    const pause = () => new Promise((resolve) => setTimeout(resolve, 5));
    const runs = [run(sd15, 'sd1')];
    await pause();
    runs.push(run(sdxl, 'sdxl'));
    await pause();
    runs.push(run(sd15, 'sd1'));
    await Promise.all(runs);
    expect(worker.stats.swaps()).toBe(2);
    expect(worker.stats.gpuBusyMs()).toBe(20 + 70 + 70);
    // One at a time: the last job ends no sooner than the three costs end to end.
    expect(Math.max(...finishedAt)).toBeGreaterThanOrEqual(160);
    const health = (await (await request(`${worker.url}/v1/health`)).body.json()) as { models: { air: string; loaded: boolean }[] };
    expect(health.models.filter((model) => model.loaded).map((model) => model.air)).toEqual([sd15]);
  });

  it('with batchSize, draws queued jobs of one batch key in one pass and leaves the others queued', async () => {
    const worker = await startWorker({
      maxConcurrency: 8,
      models: [{ air: sd15, family: 'sd1', loaded: true }],
      gpu: { stepMs: 2, swapMs: 50, maxLoadedModels: 1, batchSize: 4, batchMarginal: 0.5 },
    });
    const health = (await (await request(`${worker.url}/v1/health`)).body.json()) as { batchSize?: number };
    expect(health.batchSize).toBe(4);
    const run = async (width: number, numberResults = 1) => {
      const response = await postJob(worker, jobRequest({ steps: 10, width, numberResults }));
      expect(await response.body.text()).toContain('"event":"result"');
    };
    // The first runs alone (nothing queued yet); then three 512² jobs (4 images) share a pass while the 768²
    // one, another key, waits for the next: 20 + 20 × (1 + 3 × 0.5) + 20.
    const first = run(512);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await Promise.all([first, run(512, 2), run(768), run(512), run(512)]);
    expect(worker.stats.batchedJobs()).toBe(2);
    expect(worker.stats.gpuBusyMs()).toBe(20 + 50 + 20);
  });
});
