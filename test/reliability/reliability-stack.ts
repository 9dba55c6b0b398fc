import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { Agent, request } from 'undici';
import { kohyaSafetensorsFile, randomVectors } from '../support/embedding-fixtures.js';
import { startFakeRegistry, type FakeRegistry } from '../support/fake-registry.js';
import { startFakeWorker, type FakeWorker } from '../support/fake-worker.js';
import { freePort } from '../support/free-port.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { startServerProcess, waitUntilReady, type ServerProcess } from '../support/server-process.js';

/**
 * What the reliability suite runs against: a real gateway process (as `npm start` starts it), a real
 * redis-server, a Civitai-compatible registry and two fake GPU workers, all on loopback. The faults are
 * played on these parts — a process killed, a server hung, a worker that lies — never inside the gateway.
 */

export const SD15 = 'civitai:4384@128713';
/** Embeddings the registry serves: `civitai:{EMBEDDING_MODEL_BASE + i}@{EMBEDDING_VERSION_BASE + i}`, all SD 1.5. */
const EMBEDDING_MODEL_BASE = 70_000;
const EMBEDDING_VERSION_BASE = 80_000;

export function embeddingAir(index: number): string {
  return `civitai:${EMBEDDING_MODEL_BASE + index}@${EMBEDDING_VERSION_BASE + index}`;
}

export interface ReliabilityStack {
  readonly redis: RedisServer;
  readonly registry: FakeRegistry;
  /** Both serve SD 1.5; the fault cases make `faulty` misbehave while `good` stays well. */
  readonly faulty: FakeWorker;
  readonly good: FakeWorker;
  readonly port: number;
  readonly gateway: ServerProcess;
  /** The first of API_KEYS, when the stack was started with keys. */
  readonly apiKey: string | undefined;
  /** Embeddings the registry knows, 0 … count − 1. */
  readonly embeddings: number;
  close(): Promise<void>;
}

export async function startReliabilityStack(options: { embeddings: number; env?: Record<string, string> }): Promise<ReliabilityStack> {
  const redis = await startRedisServer();
  const registry = await startFakeRegistry();
  for (let index = 0; index < options.embeddings; index++) {
    registry.addModelVersion({
      modelId: EMBEDDING_MODEL_BASE + index,
      versionId: EMBEDDING_VERSION_BASE + index,
      name: `Style ${index}`,
      type: 'TextualInversion',
      baseModel: 'SD 1.5',
      files: [{ name: `style-${index}.safetensors`, bytes: kohyaSafetensorsFile(randomVectors(2, 768, index + 1), 2, 768) }],
    });
  }
  const workerOptions = { models: [{ air: SD15, family: 'sd1' as const, loaded: true }], maxConcurrency: 64 };
  const faulty = await startFakeWorker(workerOptions);
  const good = await startFakeWorker(workerOptions);
  const port = await freePort();
  const gateway = startServerProcess({
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    REDIS_URL: redis.url,
    CIVITAI_BASE_URL: registry.url,
    WORKER_URLS: `${faulty.url},${good.url}`,
    WORKER_HEALTH_INTERVAL_MS: '200',
    QUEUE_MAX: '2000',
    ...options.env,
  });
  await waitUntilReady(port);
  const stack: ReliabilityStack = {
    redis,
    registry,
    faulty,
    good,
    port,
    gateway,
    apiKey: options.env?.['API_KEYS']?.split(',')[0],
    embeddings: options.embeddings,
    async close() {
      await gateway.stop();
      await Promise.all([faulty.close(), good.close(), registry.close(), redis.stop()]);
    },
  };
  await untilServed(stack);
  return stack;
}

/** Waits until a task goes through: the gateway has polled its workers. */
export async function untilServed(stack: { port: number; apiKey?: string | undefined }, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const outcome = await exchange(stack.port, [imageTask()], stack.apiKey);
    if (outcome?.status === 200 && outcome.errors.length === 0) return;
    if (Date.now() > deadline) throw new Error(`the gateway never served a task: ${JSON.stringify(outcome)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function imageTask(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { taskType: 'imageInference', taskUUID: randomUUID(), positivePrompt: 'a lighthouse at dusk', model: SD15, width: 128, height: 128, steps: 4, outputType: 'base64Data', outputFormat: 'PNG', ...fields };
}

/** One HTTP exchange as the suite judges it. */
export interface Outcome {
  /** 0: no HTTP answer (a reset, a refused connection, a timeout). */
  readonly status: number;
  readonly sent: readonly string[];
  /** taskUUIDs of the images delivered, one entry per image. */
  readonly delivered: readonly string[];
  readonly errors: readonly { code: string; taskUUID?: string; retryable: boolean }[];
  readonly topLevel: string | undefined;
  readonly transportError: string | undefined;
  readonly ms: number;
}

/** Short connections per request, so a reset shows up as the request's own failure. */
const loadAgent = new Agent({ connections: 256, pipelining: 1, headersTimeout: 120_000, bodyTimeout: 120_000 });

export async function sendLoad(
  port: number,
  load: { requests: number; concurrency: number; tasks: (index: number) => Record<string, unknown>[]; apiKey?: string | undefined },
): Promise<Outcome[]> {
  const outcomes: Outcome[] = new Array<Outcome>(load.requests);
  let next = 0;
  const runner = async (): Promise<void> => {
    while (next < load.requests) {
      const index = next++;
      outcomes[index] = await exchange(port, load.tasks(index), load.apiKey);
    }
  };
  await Promise.all(Array.from({ length: Math.min(load.concurrency, load.requests) }, runner));
  return outcomes;
}

export async function exchange(port: number, tasks: Record<string, unknown>[], apiKey?: string): Promise<Outcome> {
  const sent = tasks.map((task) => String(task['taskUUID']));
  const started = performance.now();
  try {
    const response = await request(`http://127.0.0.1:${port}/v1/tasks`, {
      method: 'POST',
      headers: apiKey ? { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` } : { 'content-type': 'application/json' },
      body: JSON.stringify(tasks),
      dispatcher: loadAgent,
    });
    const text = await response.body.text();
    const body = JSON.parse(text) as { data?: { taskUUID: string }[]; errors?: { code: string; taskUUID?: string; retryable: boolean }[]; error?: { code: string } };
    return {
      status: response.statusCode,
      sent,
      delivered: (body.data ?? []).map((item) => item.taskUUID),
      errors: body.errors ?? [],
      topLevel: body.error?.code,
      transportError: undefined,
      ms: performance.now() - started,
    };
  } catch (error) {
    return { status: 0, sent, delivered: [], errors: [], topLevel: undefined, transportError: (error as Error).message, ms: performance.now() - started };
  }
}

/** `{"200": 38, "503 modelUnavailable": 2}`: how a case's requests were answered. */
export function tally(outcomes: readonly Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) {
    const codes = [...new Set(outcome.errors.map((error) => error.code))].sort();
    const key = outcome.status === 0 ? `no answer (${outcome.transportError ?? '?'})` : [String(outcome.status), ...codes].join(' ');
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/**
 * What holds in every case, whatever the fault: an HTTP answer for every request, never a 500, and each task
 * answered once — its images or its errors, not both, not twice, not lost.
 */
export function invariantBreaches(outcomes: readonly Outcome[], numberResults = 1): string[] {
  const breaches: string[] = [];
  for (const outcome of outcomes) {
    if (outcome.status === 0) breaches.push(`no HTTP answer: ${outcome.transportError ?? '?'}`);
    if (outcome.status >= 500 && outcome.errors.some((error) => error.code === 'internalError')) breaches.push(`internalError (${outcome.status})`);
    if (outcome.status === 500) breaches.push('HTTP 500');
    if (outcome.status === 0) continue;
    for (const taskUUID of outcome.sent) {
      const images = outcome.delivered.filter((delivered) => delivered === taskUUID).length;
      const errors = outcome.errors.filter((error) => error.taskUUID === taskUUID).length;
      const answeredWhole = outcome.topLevel !== undefined && outcome.delivered.length === 0;
      if (!answeredWhole && !((images === numberResults && errors === 0) || (images === 0 && errors > 0))) {
        breaches.push(`task ${taskUUID}: ${images} image(s) and ${errors} error(s)`);
      }
    }
  }
  return breaches;
}

export function succeeded(outcomes: readonly Outcome[]): number {
  return outcomes.filter((outcome) => outcome.status === 200 && outcome.errors.length === 0).length;
}

/** Resident memory and open descriptors of a process, from /proc (Linux). */
export function processFootprint(pid: number): { rssMiB: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return { rssMiB: Math.round(rssKiB / 102.4) / 10, fds: readdirSync(`/proc/${pid}/fd`).length };
}
