import { randomUUID } from 'node:crypto';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTaskResponse } from '../helper.js';
import { startFakeWorker, type FakeWorker } from '../support/fake-worker.js';
import { freePort } from '../support/free-port.js';
import { until } from '../support/gateway.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { startServerProcess, waitUntilReady, type ServerProcess } from '../support/server-process.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';

/**
 * Async delivery with real parts: gateway processes sharing a real Redis (ledger and BullMQ), fake GPU
 * workers and a webhook receiver on loopback. A replica is SIGKILLed with 100 accepted tasks; a worker dies
 * mid-job; a taskUUID is sent again to the other replica.
 */

const KEY = 'async-key-0123456789abcdef';
const SECRET = 'whsec-async-0123456789abcdef0123456789';
let redis: RedisServer;
let workers: FakeWorker[];
let hook: WebhookReceiver;
const replicas: { process: ServerProcess; pool: Pool }[] = [];

async function startReplica(): Promise<{ process: ServerProcess; pool: Pool }> {
  const port = await freePort();
  const process = startServerProcess({
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    API_KEYS: KEY,
    REDIS_URL: redis.url,
    CIVITAI_BASE_URL: 'off',
    WORKER_URLS: workers.map((worker) => worker.url).join(','),
    WORKER_HEALTH_INTERVAL_MS: '100',
    QUEUE_MAX: '1000',
    TASK_FIRST_BYTE_TIMEOUT_MS: '2000',
    ASYNC_CONCURRENCY: '32',
    // A dead replica's jobs are taken up again after this.
    ASYNC_LOCK_MS: '1500',
    WEBHOOK_SIGNING_SECRET: SECRET,
    WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
    WEBHOOK_BACKOFF_MS: '200',
  });
  await waitUntilReady(port);
  const replica = { process, pool: new Pool(`http://127.0.0.1:${port}`, { connections: 20 }) };
  replicas.push(replica);
  return replica;
}

beforeAll(async () => {
  redis = await startRedisServer();
  workers = [await startFakeWorker({ maxConcurrency: 200 }), await startFakeWorker({ maxConcurrency: 200 })];
  hook = await startWebhookReceiver(SECRET);
}, 60_000);

afterAll(async () => {
  await Promise.all(replicas.map(async ({ process, pool }) => Promise.all([pool.close(), process.stop()])));
  await Promise.all([...workers.map((worker) => worker.close()), hook.close()]);
  await redis.stop();
});

async function post(pool: Pool, tasks: unknown[]) {
  const response = await pool.request({ path: '/v1/tasks', method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(tasks) });
  return { status: response.statusCode, body: readTaskResponse(await response.body.text()) };
}

const task = (overrides: Record<string, unknown> = {}) => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  positivePrompt: 'a lighthouse at dusk',
  model: 'civitai:4384@128713',
  width: 512,
  height: 512,
  ...overrides,
});

const jobsOf = (taskUUID: string) => workers.reduce((sum, worker) => sum + worker.receivedJobs.filter((job) => job.jobId.startsWith(taskUUID)).length, 0);

describe('async delivery across replicas', () => {
  it('completes all 100 async tasks of a replica SIGKILLed before they finish, on another replica, each once, each webhook once', async () => {
    for (const worker of workers) worker.setBehaviour({ latencyMs: 3000 });
    const first = await startReplica();
    const tasks = Array.from({ length: 100 }, () => task({ deliveryMethod: 'async', webhookURL: hook.url }));
    const ack = await post(first.pool, tasks);
    expect(ack.status).toBe(200);
    expect(ack.body.data).toEqual(tasks.map((sent) => ({ taskType: 'imageInference', taskUUID: sent.taskUUID })));
    // The replica is running its first jobs on the workers when it dies.
    await until(() => workers.reduce((sum, worker) => sum + worker.stats.accepted(), 0) >= 10, 10_000);
    await first.process.stop();
    const completedBeforeKill = workers.reduce((sum, worker) => sum + worker.stats.completed(), 0);
    expect(completedBeforeKill).toBe(0);
    for (const worker of workers) worker.setBehaviour({ latencyMs: 200 });

    const second = await startReplica();
    const finished = async () => {
      const answers = await Promise.all(tasks.map((sent) => post(second.pool, [{ taskType: 'getResponse', taskUUID: sent.taskUUID }])));
      return answers.filter((answer) => answer.body.data[0]?.status === 'success').length;
    };
    await until(async () => (await finished()) === 100, 60_000);
    const results = await Promise.all(tasks.map((sent) => post(second.pool, [{ taskType: 'getResponse', taskUUID: sent.taskUUID }])));
    expect(results.every((answer) => answer.body.data.length === 1)).toBe(true);
    // Asked again, the same images: the record was written once.
    const again = await Promise.all(tasks.slice(0, 10).map((sent) => post(second.pool, [{ taskType: 'getResponse', taskUUID: sent.taskUUID }])));
    expect(again.map((answer) => answer.body.data[0]?.imageUUID)).toEqual(results.slice(0, 10).map((answer) => answer.body.data[0]?.imageUUID));
    // Every task ran to its end; those the dead replica had running ran once more, no task more than twice.
    for (const sent of tasks) expect(jobsOf(sent.taskUUID)).toBeGreaterThanOrEqual(1);
    for (const sent of tasks) expect(jobsOf(sent.taskUUID)).toBeLessThanOrEqual(2);
    // Those it had running were taken up from their stalled locks (not only the waiting ones): run twice.
    const runTwice = tasks.filter((sent) => jobsOf(sent.taskUUID) === 2).length;
    expect(runTwice).toBeGreaterThanOrEqual(10);

    await until(() => new Set(hook.received.map((delivery) => delivery.deliveryId)).size === 100, 20_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(hook.received).toHaveLength(100);
    expect(hook.received.every((delivery) => delivery.verified)).toBe(true);
    const delivered = new Map(hook.received.map((delivery) => { const body = JSON.parse(delivery.body) as { data: { taskUUID: string; imageUUID: string }[] }; return [body.data[0]!.taskUUID, body.data[0]!.imageUUID]; }));
    for (const [index, sent] of tasks.entries()) expect(delivered.get(sent.taskUUID)).toBe(results[index]!.body.data[0]?.imageUUID);
  }, 120_000);

  it('retries an async task whose worker dies mid-job on another worker: one result, not lost, not doubled', async () => {
    const replica = replicas.at(-1)!;
    workers[0]!.setBehaviour({ latencyMs: 2000 });
    workers[1]!.setBehaviour({ latencyMs: 2000 });
    const sent = task({ deliveryMethod: 'async' });
    await post(replica.pool, [sent]);
    await until(() => workers.some((worker) => worker.receivedJobs.some((job) => job.jobId.startsWith(sent.taskUUID))), 10_000);
    const victim = workers.find((worker) => worker.receivedJobs.some((job) => job.jobId.startsWith(sent.taskUUID)))!;
    const survivor = workers.find((worker) => worker !== victim)!;
    survivor.setBehaviour({ latencyMs: 100 });
    await victim.kill();
    await until(async () => (await post(replica.pool, [{ taskType: 'getResponse', taskUUID: sent.taskUUID }])).body.data[0]?.status === 'success', 20_000);
    const answer = await post(replica.pool, [{ taskType: 'getResponse', taskUUID: sent.taskUUID }]);
    expect(answer.body.data).toHaveLength(1);
    expect(survivor.receivedJobs.filter((job) => job.jobId.startsWith(sent.taskUUID))).toHaveLength(1);
    await victim.restart();
  }, 60_000);

  it('never generates a taskUUID again, whichever replica it is sent to', async () => {
    for (const worker of workers) worker.setBehaviour({ latencyMs: 50 });
    const [one, two] = [replicas.at(-1)!, await startReplica()];
    const sent = task({ outputType: 'URL' });
    const first = await post(one.pool, [sent]);
    expect(first.status).toBe(200);
    const again = await post(two.pool, [sent]);
    expect(again.body.data).toEqual(first.body.data);
    const conflicting = await post(two.pool, [{ ...sent, positivePrompt: 'something else' }]);
    expect(conflicting.body.errors[0]).toMatchObject({ code: 'taskUUIDConflict' });
    expect(jobsOf(sent.taskUUID)).toBe(1);
  }, 60_000);

  it('delivers every webhook exactly once to a receiver that was down for a while, and refuses private targets when sent', async () => {
    for (const worker of workers) worker.setBehaviour({ latencyMs: 50 });
    const replica = replicas.at(-1)!;
    await hook.down();
    const tasks = Array.from({ length: 5 }, () => task({ deliveryMethod: 'async', numberResults: 2, webhookURL: hook.url }));
    expect((await post(replica.pool, tasks)).status).toBe(200);
    const mine = () => hook.received.filter((delivery) => tasks.some((sent) => delivery.deliveryId.startsWith(sent.taskUUID)));
    // Every result's first attempts fail while it is down (each is recorded on its task).
    await until(async () => {
      const response = await replica.pool.request({ path: `/v1/tasks/${tasks[0]!.taskUUID}/webhooks`, method: 'GET', headers: { authorization: `Bearer ${KEY}` } });
      const attempts = ((await response.body.json()) as { data: { delivered: boolean }[] }).data;
      return attempts.filter((attempt) => !attempt.delivered).length >= 2;
    }, 10_000);
    await hook.up();
    await until(() => new Set(mine().map((delivery) => delivery.deliveryId)).size === 10, 20_000);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(mine()).toHaveLength(10);
    expect(mine().every((delivery) => delivery.verified)).toBe(true);
    // Those that failed while it was down (the first task's, awaited above) arrived on a later attempt.
    expect(mine().filter((delivery) => delivery.deliveryId.startsWith(tasks[0]!.taskUUID)).every((delivery) => delivery.attempt > 1)).toBe(true);

    const refused = await post(replica.pool, [task({ deliveryMethod: 'async', webhookURL: 'http://10.0.0.1/hook' }), task({ deliveryMethod: 'async', webhookURL: 'http://169.254.169.254/latest' })]);
    expect(refused.body.errors.map((error) => error.code)).toEqual(['webhookTargetRefused', 'webhookTargetRefused']);
  }, 60_000);
});
