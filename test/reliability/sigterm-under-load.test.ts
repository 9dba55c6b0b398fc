import { once } from 'node:events';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeWorker, type FakeWorker } from '../support/fake-worker.js';
import { freePort } from '../support/free-port.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { startServerProcess, waitUntilReady, type ServerProcess } from '../support/server-process.js';
import { reliabilityProfile, recordResult } from './profile.js';
import { imageTask, untilServed } from './reliability-stack.js';

/**
 * A rolling restart as a load balancer plays it: two replicas under a steady load, the balancer sending each
 * request to a replica whose readiness answered 200 at its last poll, and one replica sent SIGTERM halfway.
 * No request is reset; the draining replica finishes what it holds and refuses the rest retryably (503
 * shuttingDown); a client that retries what it may retry gets every task answered, exactly once.
 */

const REQUESTS = reliabilityProfile.requestsPerCase * 5;
const CONCURRENCY = 24;
const POLL_MS = 100;

let redis: RedisServer;
let worker: FakeWorker;
const replicas: { port: number; process: ServerProcess; ready: boolean }[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  worker = await startFakeWorker({ maxConcurrency: 256 });
  worker.setBehaviour({ latencyMs: 300 });
  for (let index = 0; index < 2; index++) {
    const port = await freePort();
    const process = startServerProcess({ PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', REDIS_URL: redis.url, CIVITAI_BASE_URL: 'off', WORKER_URLS: worker.url, WORKER_HEALTH_INTERVAL_MS: '200', QUEUE_MAX: '1000' });
    replicas.push({ port, process, ready: false });
  }
  await Promise.all(replicas.map(async (replica) => {
    await waitUntilReady(replica.port);
    await untilServed(replica);
    replica.ready = true;
  }));
}, 60_000);

afterAll(async () => {
  await Promise.all(replicas.map((replica) => replica.process.stop()));
  await worker?.close();
  await redis?.stop();
});

type Attempt = { kind: 'answered'; status: number; delivered: number; codes: string[] } | { kind: 'refused' } | { kind: 'broken'; message: string };

async function attempt(port: number, task: Record<string, unknown>): Promise<Attempt> {
  try {
    // One connection per request (as a balancer's fresh upstream connection): a reset shows up as this request's.
    const response = await request(`http://127.0.0.1:${port}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([task]), reset: true });
    const body = JSON.parse(await response.body.text()) as { data?: { taskUUID: string }[]; errors?: { code: string }[] };
    return { kind: 'answered', status: response.statusCode, delivered: (body.data ?? []).filter((item) => item.taskUUID === task['taskUUID']).length, codes: (body.errors ?? []).map((error) => error.code) };
  } catch (error) {
    const code = (error as { code?: string }).code;
    // Refused before accepted: the request never reached the replica, as a balancer would see and retry.
    if (code === 'ECONNREFUSED') return { kind: 'refused' };
    return { kind: 'broken', message: `${code ?? ''} ${(error as Error).message}` };
  }
}

describe('SIGTERM on one of two replicas under load', () => {
  it('resets nothing: every task is answered once, on the replica that drains or, after a retryable refusal, the other', async () => {
    const poller = setInterval(() => {
      for (const replica of replicas) {
        void request(`http://127.0.0.1:${replica.port}/health/ready`, { reset: true })
          .then(async (response) => {
            await response.body.dump();
            replica.ready = response.statusCode === 200;
          })
          .catch(() => (replica.ready = false));
      }
    }, POLL_MS);
    const counts = { sent: 0, answered: 0, shuttingDown: 0, refusedConnections: 0, broken: 0, retries: 0, onDrainingReplica: 0 };
    const broken: string[] = [];
    const deliveredPerTask: number[] = [];
    let next = 0;
    let turn = 0;
    const draining = replicas[0]!;
    let exited: Promise<unknown[]> | undefined;

    const client = async (): Promise<void> => {
      while (next < REQUESTS) {
        const index = next++;
        if (index === Math.floor(REQUESTS / 2)) {
          exited = once(draining.process.child, 'exit');
          draining.process.child.kill('SIGTERM');
        }
        const task = imageTask();
        let delivered = 0;
        for (let tries = 0; tries < 10; tries++) {
          const ready = replicas.filter((replica) => replica.ready);
          const replica = ready.length > 0 ? ready[turn++ % ready.length]! : replicas[1]!;
          counts.sent++;
          const outcome = await attempt(replica.port, task);
          if (outcome.kind === 'broken') {
            counts.broken++;
            broken.push(outcome.message);
            break;
          }
          if (outcome.kind === 'refused') {
            counts.refusedConnections++;
            replica.ready = false;
            counts.retries++;
            continue;
          }
          counts.answered++;
          if (replica === draining && exited) counts.onDrainingReplica++;
          if (outcome.codes.includes('shuttingDown')) {
            counts.shuttingDown++;
            counts.retries++;
            replica.ready = false;
            continue;
          }
          expect(outcome.status, JSON.stringify(outcome)).toBe(200);
          delivered = outcome.delivered;
          break;
        }
        deliveredPerTask.push(delivered);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, client));
    clearInterval(poller);
    const [code] = ((await exited) ?? []) as [number | null];
    recordResult('replica SIGTERM under load', { profile: reliabilityProfile.name, tasks: REQUESTS, ...counts, drainingReplicaExitCode: code });

    expect(broken).toStrictEqual([]);
    expect(deliveredPerTask).toHaveLength(REQUESTS);
    expect(deliveredPerTask.every((delivered) => delivered === 1)).toBe(true);
    // The drain exits cleanly, and the load did reach it while it drained.
    expect(code).toBe(0);
    expect(counts.onDrainingReplica).toBeGreaterThan(0);
  }, 240_000);
});
