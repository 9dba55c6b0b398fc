import { BoundedCounter } from './bounded-counter.js';
import { seededRandom } from './seeded-random.js';
import { batchKey } from '../../src/dispatch/batch-key.js';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  jobRequestSchema,
  WORKER_PROTOCOL_VERSION,
  type JobEvent,
  type JobImage,
  type JobRequest,
  type WorkerError,
  type WorkerCapability,
  type WorkerHealth,
} from '../../src/dispatch/worker-protocol.js';
import { paddedPng, tinyImage } from './tiny-images.js';

/**
 * A GPU worker on loopback that speaks worker protocol v1 (src/dispatch/worker-protocol.ts) without a GPU:
 * real HTTP and real NDJSON streams, so the gateway's dispatcher runs its real sockets, deadlines, retries
 * and cancellations against it. Its answers carry real (tiny) images of the asked format, and its faults
 * — slow first byte, slow total, refusals, hangs, crashes mid-stream, death of the whole process — are
 * switched on by setBehaviour.
 *
 * Lean on purpose, since benchmarks load it: logs and counters are bounded, and every timer belongs to a
 * running job, so ending the jobs (close, kill, cancel, a client that hangs up) leaves none behind.
 */

type Family = WorkerHealth['families'][number];

export interface FakeWorkerModel {
  air: string;
  family: Family;
  /** Default false. */
  loaded?: boolean;
}

export interface FakeWorkerOptions {
  /** Default: SD 1.5 (`civitai:4384@128713`, loaded) and an SDXL model (`civitai:101055@128078`, not loaded). */
  models?: FakeWorkerModel[];
  /** Default 4. */
  maxConcurrency?: number;
  /** Default 0 (a free port); restart() reuses the port the first listen got. */
  port?: number;
  /** Draws in [0, 1) for failureRate; default a generator with a fixed seed, so runs repeat. */
  random?: () => number;
  /**
   * Optional protocol features it advertises. `nsfwCheck`: its "classifier" flags an image NSFW when the
   * positive prompt contains "nsfw". A job that carries a feature's field without it is refused (400), as a
   * strict worker of the core protocol refuses a field it does not know.
   */
  capabilities?: WorkerCapability[];
  /**
   * A simulated GPU, for scheduling benchmarks: accepted jobs run one at a time, each costing `stepMs` per step,
   * plus `swapMs` when its model is not loaded (it then is, and the least recently used beyond
   * `maxLoadedModels` is not). Health reports what is loaded. Without it, jobs run side by side in latencyMs.
   * With `batchSize` > 1 (advertised in health), it draws queued jobs of one batch key (src/dispatch/batch-key.ts)
   * together, up to that many images, a pass of n images costing `stepMs × (1 + (n − 1) × batchMarginal)` per step.
   */
  gpu?: { readonly stepMs: number; readonly swapMs: number; readonly maxLoadedModels: number; readonly batchSize?: number; readonly batchMarginal?: number };
}

export interface FakeWorkerBehaviour {
  /** Before an admitted job's response headers and `accepted` line (a slow first byte); the job holds its slot meanwhile. */
  acceptDelayMs: number;
  /** From `accepted` to the last event. */
  latencyMs: number;
  /** A progress line this often between `accepted` and the end; 0 for none. */
  progressEveryMs: number;
  /** 0..1: share of admitted jobs answered failStatus `internal` (retryable) instead of `accepted`, after acceptDelayMs. */
  failureRate: number;
  /** Default 500. */
  failStatus: number;
  /** POST /v1/jobs is read and never answered (until the client gives up or the worker closes). */
  hang: boolean;
  /** `accepted`, then nothing until the job is cancelled or the connection closes. */
  hangAfterAccept: boolean;
  /** `accepted`, then the socket is destroyed. */
  crashAfterAccept: boolean;
  /** The result names this job id instead of the job's own (a worker mixing up its streams). */
  resultJobId: string | undefined;
  /** Added to every image's seed: results that are not what the job asked for. */
  seedOffset: number;
  /** PNG results are padded to about this many bytes (0: as small as they come), for tests that need big answers. */
  pngBytes: number;
  /** When set, streams end with this error event instead of `result`. */
  errorEvent: WorkerError | undefined;
  /** Right after `accepted`, a line that is not JSON (then the job goes on as if nothing happened). */
  malformedLine: boolean;
  /** The result carries this many images beyond numberResults. */
  extraImages: number;
  /** A second `result` line follows the first, before the stream ends. */
  resultTwice: boolean;
  healthStatus: WorkerHealth['status'];
  /** GET /v1/health answers 500. */
  healthFails: boolean;
  /** GET /v1/health answers 200 with a body that is not JSON. */
  healthGarbage: boolean;
}

export interface FakeWorkerStats {
  /** POST /v1/jobs received, refused, hung and invalid ones included. */
  jobs(): number;
  /** Jobs that got an `accepted` line. */
  accepted(): number;
  /** Jobs whose stream ended with `result`. */
  completed(): number;
  /** Valid POST /v1/jobs received with this jobId, refused ones included. */
  jobsWithId(jobId: string): number;
  /** jobIds of DELETE /v1/jobs/{jobId} received, running or not, oldest first (at least the last 1000). */
  cancels(): readonly string[];
  /** Jobs holding a slot now: admitted (accept delay included) and not yet ended. */
  running(): number;
  peakRunning(): number;
  healthChecks(): number;
  /** With `gpu`: milliseconds the simulated device spent on jobs (steps and swaps), and the model swaps. */
  gpuBusyMs(): number;
  swaps(): number;
  /** With `gpu.batchSize`: jobs that joined another job's pass. */
  batchedJobs(): number;
}

export interface FakeWorker {
  /** `http://127.0.0.1:PORT`, the same after restart(). */
  readonly url: string;
  /** Jobs take the behaviour current when they arrive. An undefined value leaves a setting as it is, except errorEvent and resultJobId, which it clears. */
  setBehaviour(behaviour: Partial<FakeWorkerBehaviour>): void;
  setModelLoaded(air: string, loaded: boolean): void;
  readonly stats: FakeWorkerStats;
  /** Valid job requests received, oldest first (at least the last 500). */
  readonly receivedJobs: readonly JobRequest[];
  /** The request headers of each job in receivedJobs, at the same index. */
  readonly receivedJobHeaders: readonly IncomingHttpHeaders[];
  /** Abrupt death: close the listener and destroy every open socket mid-stream. */
  kill(): Promise<void>;
  /** Listen again on the same port after kill(). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

const defaultModels: FakeWorkerModel[] = [
  { air: 'civitai:4384@128713', family: 'sd1', loaded: true },
  { air: 'civitai:101055@128078', family: 'sdxl', loaded: false },
];

const maxBodyBytes = 1024 * 1024;
const keptJobs = 500;
const keptCancels = 1000;
const seedMask = (1n << 64n) - 1n;
const jobPathPrefix = '/v1/jobs/';
const ndjsonHeaders = { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' };

interface RunningJob {
  readonly request: JobRequest;
  readonly response: ServerResponse;
  /** The behaviour when the job arrived: a later setBehaviour does not change a job under way. */
  readonly behaviour: Readonly<FakeWorkerBehaviour>;
  readonly receivedAt: number;
  acceptedAt: number;
  readonly timers: NodeJS.Timeout[];
}


/** Appends, and trims to the newest `keep` once twice that many piled up: amortised O(1), same array. */
function pushBounded<T>(list: T[], item: T, keep: number): void {
  list.push(item);
  if (list.length > 2 * keep) list.splice(0, list.length - keep);
}


function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function ignore(): void {}

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (response.headersSent || response.destroyed) return;
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

function sendError(response: ServerResponse, status: number, error: WorkerError, headers?: Record<string, string>): void {
  sendJson(response, status, { error }, headers);
}

/** One NDJSON line; the headers go out with the first. False when the stream is gone. */
function writeEvent(response: ServerResponse, event: JobEvent, onFlushed?: () => void): boolean {
  if (response.destroyed || response.writableEnded) return false;
  if (!response.headersSent) response.writeHead(200, ndjsonHeaders);
  if (onFlushed) response.write(`${JSON.stringify(event)}\n`, onFlushed);
  else response.write(`${JSON.stringify(event)}\n`);
  return true;
}

function imagesOf(job: JobRequest, pngBytes: number): JobImage[] {
  const first = BigInt(job.seed);
  const nsfw = job.checkNSFW ? /nsfw/i.test(job.positivePrompt) : undefined;
  return Array.from({ length: job.numberResults }, (_, index) => {
    const seed = (first + BigInt(index)) & seedMask;
    const bytes = tinyImage(job.outputFormat, seed);
    const data = Buffer.from(job.outputFormat === 'PNG' && pngBytes > bytes.length ? paddedPng(bytes, pngBytes - bytes.length) : bytes).toString('base64');
    const image: JobImage = { imageUUID: randomUUID(), seed: seed.toString(), format: job.outputFormat, data };
    if (nsfw !== undefined) image.nsfw = nsfw;
    return image;
  });
}

/** The capability fields a job carries, by the capability that reads them: where each is, and whether the job has it. */
const capabilityFields: Record<WorkerCapability, { field: string; carried: (job: JobRequest) => boolean }> = {
  outputQuality: { field: 'outputQuality', carried: (job) => job.outputQuality !== undefined },
  nsfwCheck: { field: 'checkNSFW', carried: (job) => job.checkNSFW !== undefined },
  promptWeighting: { field: 'promptWeighting', carried: (job) => job.promptWeighting !== undefined },
  embeddingMentions: { field: 'embeddings[].mentions', carried: (job) => job.embeddings.some((embedding) => embedding.mentions !== undefined) },
  loras: { field: 'loras', carried: (job) => job.loras !== undefined },
};

function issuesOf(error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.map(String).join('.') || '(body)'}: ${issue.message}`)
    .join('; ');
}

/** A worker that does its job at once and well; setBehaviour(defaultFakeWorkerBehaviour) restores it. */
export const defaultFakeWorkerBehaviour: Readonly<FakeWorkerBehaviour> = Object.freeze({
  acceptDelayMs: 0,
  latencyMs: 0,
  progressEveryMs: 0,
  failureRate: 0,
  failStatus: 500,
  hang: false,
  hangAfterAccept: false,
  crashAfterAccept: false,
  resultJobId: undefined,
  seedOffset: 0,
  pngBytes: 0,
  errorEvent: undefined,
  malformedLine: false,
  extraImages: 0,
  resultTwice: false,
  healthStatus: 'ready',
  healthFails: false,
  healthGarbage: false,
});

export async function startFakeWorker(options: FakeWorkerOptions = {}): Promise<FakeWorker> {
  const maxConcurrency = options.maxConcurrency ?? 4;
  const capabilities = new Set<WorkerCapability>(options.capabilities ?? []);
  if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) throw new Error(`maxConcurrency must be an integer ≥ 1, got ${maxConcurrency}`);
  const models = new Map((options.models ?? defaultModels).map((model) => [model.air, { family: model.family, loaded: model.loaded ?? false }]));
  const random = options.random ?? seededRandom(0x5eed);
  const behaviour: FakeWorkerBehaviour = { ...defaultFakeWorkerBehaviour };

  const running = new Map<string, RunningJob>();
  const receivedJobs: JobRequest[] = [];
  const receivedJobHeaders: IncomingHttpHeaders[] = [];
  const cancels: string[] = [];
  const jobsById = new BoundedCounter();
  let jobs = 0;
  let accepted = 0;
  let completed = 0;
  let peakRunning = 0;
  let healthChecks = 0;
  let closed = false;
  // The simulated GPU: jobs waiting for the device, whether it is busy, what it spent, models by last use.
  const deviceQueue: RunningJob[] = [];
  let deviceBusy = false;
  let gpuBusyMs = 0;
  let swaps = 0;
  let batched = 0;
  const lastUsed = new Map<string, number>();

  const server = createServer(handle);
  let port = options.port ?? 0;
  await listen();
  const url = `http://127.0.0.1:${port}`;

  async function listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    port = (server.address() as AddressInfo).port;
  }

  function handle(request: IncomingMessage, response: ServerResponse): void {
    // A socket that dies mid-stream must not become an unhandled 'error' event.
    request.on('error', ignore);
    response.on('error', ignore);
    const path = (request.url ?? '/').split('?', 1)[0] ?? '/';
    if (request.method === 'GET' && path === '/v1/health') {
      request.resume();
      answerHealth(response);
    } else if (request.method === 'POST' && path === '/v1/jobs') {
      jobs += 1;
      readBody(request, response, (text) => submit(text, response, request.headers));
    } else if (request.method === 'DELETE' && path.startsWith(jobPathPrefix) && !path.includes('/', jobPathPrefix.length)) {
      request.resume();
      cancel(decodePathPart(path.slice(jobPathPrefix.length)), response);
    } else {
      request.resume();
      sendError(response, 404, { code: 'notFound', message: `No endpoint answers ${request.method ?? '?'} ${path}.`, retryable: false });
    }
  }

  function answerHealth(response: ServerResponse): void {
    healthChecks += 1;
    if (behaviour.healthFails) {
      sendError(response, 500, { code: 'internal', message: 'Injected health failure.', retryable: true });
      return;
    }
    if (behaviour.healthGarbage) {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('<html>ready?</html>');
      return;
    }
    const served = [...models].map(([air, model]) => ({ air, family: model.family, loaded: model.loaded }));
    const health: WorkerHealth = {
      protocol: WORKER_PROTOCOL_VERSION,
      status: behaviour.healthStatus,
      families: [...new Set(served.map((model) => model.family))],
      models: served,
      maxConcurrency,
      load: { running: running.size, queued: 0 },
    };
    if (capabilities.size > 0) health.capabilities = [...capabilities];
    if (options.gpu?.batchSize !== undefined) health.batchSize = options.gpu.batchSize;
    if (options.gpu) health.maxLoadedModels = options.gpu.maxLoadedModels;
    sendJson(response, 200, health);
  }

  function readBody(request: IncomingMessage, response: ServerResponse, then: (text: string) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    request.on('data', (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size <= maxBodyBytes) {
        chunks.push(chunk);
        return;
      }
      tooLarge = true;
      chunks.length = 0;
      sendError(response, 413, { code: 'payloadTooLarge', message: `A job body is at most ${maxBodyBytes} bytes.`, retryable: false }, { connection: 'close' });
    });
    request.on('end', () => {
      if (!tooLarge) then(Buffer.concat(chunks).toString('utf8'));
    });
  }

  function submit(text: string, response: ServerResponse, headers: IncomingHttpHeaders): void {
    const jobBehaviour = { ...behaviour };
    let body: unknown;
    let invalid: string | undefined;
    try {
      body = JSON.parse(text);
    } catch {
      invalid = 'The body is not JSON.';
    }
    const parsed = invalid === undefined ? jobRequestSchema.safeParse(body) : undefined;
    if (parsed?.success) {
      pushBounded(receivedJobs, parsed.data, keptJobs);
      pushBounded(receivedJobHeaders, headers, keptJobs);
      jobsById.add(parsed.data.jobId);
    }
    if (jobBehaviour.hang) return;
    if (!parsed?.success) {
      sendError(response, 400, { code: 'invalidJob', message: invalid ?? `Not a JobRequest: ${parsed ? issuesOf(parsed.error) : ''}`, retryable: false });
      return;
    }
    const job = parsed.data;
    const unknownField = (Object.entries(capabilityFields) as [WorkerCapability, (typeof capabilityFields)[WorkerCapability]][]).find(
      ([capability, { carried }]) => carried(job) && !capabilities.has(capability),
    );
    if (unknownField) {
      sendError(response, 400, { code: 'invalidJob', message: `Not a JobRequest: ${unknownField[1].field}: unknown field.`, retryable: false });
      return;
    }
    // Refusals the job cannot fix by waiting come first, then the worker's state.
    if (!models.has(job.model.air)) {
      sendError(response, 422, { code: 'unknownModel', message: `This worker does not serve model "${job.model.air}".`, retryable: false });
      return;
    }
    if (running.has(job.jobId)) {
      sendError(response, 409, { code: 'duplicateJob', message: `Job "${job.jobId}" is already running here.`, retryable: false });
      return;
    }
    if (jobBehaviour.healthStatus !== 'ready') {
      sendError(response, 503, { code: 'notReady', message: `The worker is ${jobBehaviour.healthStatus}.`, retryable: true });
      return;
    }
    if (running.size >= maxConcurrency) {
      sendError(response, 429, { code: 'busy', message: `The worker runs ${running.size} of ${maxConcurrency} jobs.`, retryable: true });
      return;
    }
    // Drawn at arrival, so the sequence of outcomes follows the order of requests, not of timers.
    const fails = jobBehaviour.failureRate > 0 && random() < jobBehaviour.failureRate;
    const runningJob: RunningJob = { request: job, response, behaviour: jobBehaviour, receivedAt: performance.now(), acceptedAt: 0, timers: [] };
    running.set(job.jobId, runningJob);
    peakRunning = Math.max(peakRunning, running.size);
    // A client that hangs up (or a socket destroyed by kill) ends the job and frees its slot.
    response.once('close', () => release(runningJob));
    after(runningJob, jobBehaviour.acceptDelayMs, () => (fails ? failInjected(runningJob) : accept(runningJob)));
  }

  function after(job: RunningJob, delayMs: number, action: () => void): void {
    if (delayMs <= 0) {
      action();
      return;
    }
    job.timers.push(setTimeout(action, delayMs));
  }

  /** Frees the job's slot and stops its timers; false when it had ended already. */
  function release(job: RunningJob): boolean {
    if (running.get(job.request.jobId) !== job) return false;
    running.delete(job.request.jobId);
    for (const timer of job.timers) clearTimeout(timer);
    job.timers.length = 0;
    return true;
  }

  /** Ends the job's stream with its last event. */
  function end(job: RunningJob, event: JobEvent): boolean {
    if (!release(job) || !writeEvent(job.response, event)) return false;
    job.response.end();
    return true;
  }

  function failInjected(job: RunningJob): void {
    release(job);
    sendError(job.response, job.behaviour.failStatus, { code: 'internal', message: 'Injected failure before the job was accepted.', retryable: true });
  }

  function accept(job: RunningJob): void {
    const { jobId, steps } = job.request;
    const { latencyMs, progressEveryMs, hangAfterAccept, crashAfterAccept } = job.behaviour;
    // A crash waits until `accepted` is on the wire, so the client sees a stream that broke, not one that never began.
    const crash = crashAfterAccept
      ? () => {
          release(job);
          job.response.destroy();
        }
      : undefined;
    if (!writeEvent(job.response, { event: 'accepted', jobId }, crash)) return;
    job.acceptedAt = performance.now();
    accepted += 1;
    if (crash || hangAfterAccept) return;
    if (job.behaviour.malformedLine) job.response.write('{"event": "progress", "jobId": \n');
    if (progressEveryMs > 0 && latencyMs > 0) {
      let tick = 0;
      job.timers.push(
        setInterval(() => {
          tick += 1;
          const step = Math.min(steps, Math.floor((tick * progressEveryMs * steps) / latencyMs));
          writeEvent(job.response, { event: 'progress', jobId, step, steps });
        }, progressEveryMs),
      );
    }
    if (options.gpu) {
      deviceQueue.push(job);
      runOnDevice();
      return;
    }
    after(job, latencyMs, () => finish(job));
  }

  /** Starts the next queued job on the simulated device when it is free. */
  function runOnDevice(): void {
    const gpu = options.gpu;
    if (!gpu || deviceBusy) return;
    let job = deviceQueue.shift();
    while (job && running.get(job.request.jobId) !== job) job = deviceQueue.shift();
    if (!job) return;
    const batch = [job, ...takeBatchable(job, gpu.batchSize ?? 1)];
    batched += batch.length - 1;
    const air = job.request.model.air;
    const model = models.get(air);
    const images = batch.reduce((sum, member) => sum + member.request.numberResults, 0);
    let costMs = gpu.batchSize === undefined || gpu.batchSize <= 1 ? job.request.steps * images * gpu.stepMs : job.request.steps * gpu.stepMs * (1 + (images - 1) * (gpu.batchMarginal ?? 1));
    lastUsed.set(air, performance.now());
    if (model && !model.loaded) {
      costMs += gpu.swapMs;
      swaps += 1;
      model.loaded = true;
      // Least recently used first; this job's model was used last.
      const loaded = [...models].filter(([, entry]) => entry.loaded).map(([name]) => name);
      loaded.sort((a, b) => (lastUsed.get(a) ?? 0) - (lastUsed.get(b) ?? 0));
      for (const evicted of loaded.slice(0, Math.max(0, loaded.length - gpu.maxLoadedModels))) models.get(evicted)!.loaded = false;
    }
    deviceBusy = true;
    gpuBusyMs += costMs;
    setTimeout(() => {
      deviceBusy = false;
      for (const member of batch) if (running.get(member.request.jobId) === member) finish(member);
      runOnDevice();
    }, costMs);
  }

  /** The queued jobs that can share `first`'s pass, in queue order, while the images fit; taken off the queue. */
  function takeBatchable(first: RunningJob, batchSize: number): RunningJob[] {
    let room = batchSize - first.request.numberResults;
    if (room <= 0) return [];
    const key = batchKey(first.request);
    const taken: RunningJob[] = [];
    for (let index = 0; index < deviceQueue.length && room > 0; ) {
      const candidate = deviceQueue[index]!;
      if (running.get(candidate.request.jobId) === candidate && candidate.request.numberResults <= room && batchKey(candidate.request) === key) {
        taken.push(candidate);
        room -= candidate.request.numberResults;
        deviceQueue.splice(index, 1);
      } else index += 1;
    }
    return taken;
  }

  function finish(job: RunningJob): void {
    const { jobId } = job.request;
    const { errorEvent } = job.behaviour;
    if (errorEvent) {
      end(job, { event: 'error', jobId, error: { code: errorEvent.code, message: errorEvent.message, retryable: errorEvent.retryable } });
      return;
    }
    const now = performance.now();
    const timings = {
      queueMs: Math.round(job.acceptedAt - job.receivedAt),
      embeddingMs: 0,
      inferenceMs: Math.round(now - job.acceptedAt),
      totalMs: Math.round(now - job.receivedAt),
    };
    const { extraImages, resultTwice } = job.behaviour;
    const images = imagesOf({ ...job.request, numberResults: job.request.numberResults + extraImages }, job.behaviour.pngBytes);
    if (job.behaviour.seedOffset !== 0) for (const image of images) image.seed = ((BigInt(image.seed) + BigInt(job.behaviour.seedOffset)) & seedMask).toString();
    const result: JobEvent = { event: 'result', jobId: job.behaviour.resultJobId ?? jobId, images, timings };
    if (resultTwice) writeEvent(job.response, result);
    if (end(job, result)) completed += 1;
  }

  function cancel(jobId: string, response: ServerResponse): void {
    pushBounded(cancels, jobId, keptCancels);
    const job = running.get(jobId);
    if (!job) {
      sendError(response, 404, { code: 'unknownJob', message: `No job "${jobId}" is running here.`, retryable: false });
      return;
    }
    end(job, { event: 'error', jobId, error: { code: 'cancelled', message: `Job "${jobId}" was cancelled by DELETE ${jobPathPrefix}{jobId}.`, retryable: false } });
    response.writeHead(204);
    response.end();
  }

  async function stop(): Promise<void> {
    for (const job of [...running.values()]) release(job);
    if (!server.listening) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  return {
    url,
    setBehaviour(update) {
      for (const [key, value] of Object.entries(update)) {
        if (value !== undefined || key === 'errorEvent' || key === 'resultJobId') Object.assign(behaviour, { [key]: value });
      }
    },
    setModelLoaded(air, loaded) {
      const model = models.get(air);
      if (!model) throw new Error(`The fake worker does not serve "${air}"; it serves ${[...models.keys()].join(', ')}.`);
      model.loaded = loaded;
    },
    stats: {
      jobs: () => jobs,
      accepted: () => accepted,
      completed: () => completed,
      jobsWithId: (jobId) => jobsById.get(jobId),
      cancels: () => cancels,
      running: () => running.size,
      peakRunning: () => peakRunning,
      healthChecks: () => healthChecks,
      gpuBusyMs: () => gpuBusyMs,
      swaps: () => swaps,
      batchedJobs: () => batched,
    },
    receivedJobs,
    receivedJobHeaders,
    kill: stop,
    async restart() {
      if (closed) throw new Error('The fake worker was closed; start a new one.');
      if (server.listening) throw new Error('The fake worker is running; kill() it before restart().');
      await listen();
    },
    async close() {
      closed = true;
      await stop();
    },
  };
}
