/**
 * Async delivery beside sync, through real processes on loopback: one gateway with a real Redis (ledger and
 * BullMQ), a fake GPU worker in its own process answering every job at once. In alternating rounds, a batch of
 * sync tasks (closed loop: each sender waits for its answer) and a batch of async tasks (submitted by the same
 * number of senders, each acknowledged at once, then run by the gateway's consumer; the round ends when the
 * queue has completed them all). Prints throughput of both (tasks finished per second), the async
 * acknowledgement's latency beside the sync answer's, and the Redis commands each kind of task costs (by
 * command, from INFO commandstats: what the ledger and the queue add per task).
 *
 *   npm run bench:async [-- --tasks 4000 --concurrency 50 --rounds 8 --warmup 1000]
 *
 * Loopback only; bounded in tasks and time; stops by itself and kills its children on any exit.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { startFakeWorker } from '../test/support/fake-worker.js';
import { freePort } from '../test/support/free-port.js';
import { startRedisServer } from '../test/support/redis-server.js';
import { waitUntilReady } from '../test/support/server-process.js';
import { benchTask } from './bench-tasks.js';
import { startGatewayAsNpmStartDoes } from './gateway-process.js';
import { progressBar, writeLatencyChart } from './report.js';
import { announceListening, closedLoop, exitWithParent, startHelperProcess, summarise, superviseChildren, type LoadRun } from './load.js';

const { values: args } = parseArgs({
  options: {
    tasks: { type: 'string', default: '4000' },
    concurrency: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '1000' },
    'serve-fake-worker': { type: 'boolean', default: false },
  },
});

const runDeadlineMs = 10 * 60_000;
const requestTimeoutMs = 30_000;
const NAMESPACE = 'clipgate:v1';

async function serveFakeWorker(): Promise<void> {
  const worker = await startFakeWorker({ maxConcurrency: 1000 });
  worker.setBehaviour({ acceptDelayMs: 0, latencyMs: 0, progressEveryMs: 0 });
  announceListening(worker.url);
  exitWithParent();
}

async function send(pool: Pool, delivery: 'sync' | 'async'): Promise<void> {
  const response = await pool.request({
    path: '/v1/tasks',
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify([{ ...benchTask(), deliveryMethod: delivery }]),
    headersTimeout: requestTimeoutMs,
    bodyTimeout: requestTimeoutMs,
  });
  const text = await response.body.text();
  const ok = delivery === 'sync' ? text.includes('"imageBase64Data"') : text.includes('"taskUUID"') && !text.includes('"errors"');
  if (response.statusCode !== 200 || !ok) throw new Error(`${delivery} task answered ${response.statusCode}: ${text.slice(0, 300)}`);
}

/** Calls per Redis command so far (commands run by scripts included). */
async function commandCalls(admin: Redis): Promise<Map<string, number>> {
  const stats = await admin.info('commandstats');
  return new Map([...stats.matchAll(/cmdstat_([\w|]+):calls=(\d+)/g)].map((match) => [match[1]!, Number(match[2])]));
}

function addDelta(into: Map<string, number>, before: Map<string, number>, after: Map<string, number>): void {
  for (const [command, calls] of after) if (command !== 'info') into.set(command, (into.get(command) ?? 0) + calls - (before.get(command) ?? 0));
}

async function main(): Promise<void> {
  const tasks = Number(args.tasks);
  const concurrency = Number(args.concurrency);
  const rounds = Number(args.rounds);
  const warmup = Number(args.warmup);
  for (const [name, value] of Object.entries({ tasks, concurrency, rounds })) if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  const perRound = Math.ceil(tasks / rounds);
  const loadBefore = loadavg()[0] ?? NaN;
  const children = superviseChildren('async-vs-sync', runDeadlineMs);
  const redis = await startRedisServer();
  const worker = await startHelperProcess('bench/async-vs-sync.ts', ['--serve-fake-worker']);
  children.push(worker.child);
  const port = await freePort();
  const gateway = await startGatewayAsNpmStartDoes(
    { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', WORKER_URLS: worker.url, CIVITAI_BASE_URL: 'off', QUEUE_MAX: '100000', WORKER_HEALTH_INTERVAL_MS: '500', REDIS_URL: redis.url, ASYNC_CONCURRENCY: String(concurrency) },
    { outputTailChars: 16_384 },
  );
  children.push(gateway.child);
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: concurrency });
  const admin = new Redis(redis.url);
  const queueConnection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue('clipgate-tasks', { connection: queueConnection, prefix: `${NAMESPACE}:{queue}` });
  const finishedJobs = async () => {
    const counts = await queue.getJobCounts('completed', 'failed');
    return (counts['completed'] ?? 0) + (counts['failed'] ?? 0);
  };
  const runs: Record<'sync' | 'async', LoadRun[]> = { sync: [], async: [] };
  const ackRuns: LoadRun[] = [];
  const commands: Record<'sync' | 'async', Map<string, number>> = { sync: new Map(), async: new Map() };
  const counted: Record<'sync' | 'async', number> = { sync: 0, async: 0 };

  const asyncRound = async (count: number): Promise<{ run: LoadRun; acks: LoadRun }> => {
    const before = await finishedJobs();
    const begin = performance.now();
    const acks = await closedLoop(count, concurrency, () => send(pool, 'async'));
    const deadline = Date.now() + 120_000;
    while ((await finishedJobs()) - before < count) {
      if (Date.now() > deadline) throw new Error(`async round: ${(await finishedJobs()) - before} of ${count} jobs finished in 120 s\n${gateway.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const seconds = (performance.now() - begin) / 1000;
    return { run: { latenciesMs: acks.latenciesMs, seconds }, acks };
  };
  try {
    await waitUntilReady(port);
    for (let attempt = 0; ; attempt++) {
      try {
        await send(pool, 'sync');
        break;
      } catch (error) {
        if (attempt > 200) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    await closedLoop(warmup, concurrency, () => send(pool, 'sync'));
    await asyncRound(warmup);
    const progress = progressBar('async vs sync', rounds * 2);
    for (let round = 0; round < rounds; round++) {
      for (const delivery of round % 2 === 0 ? (['sync', 'async'] as const) : (['async', 'sync'] as const)) {
        const before = await commandCalls(admin);
        if (delivery === 'sync') runs.sync.push(await closedLoop(perRound, concurrency, () => send(pool, 'sync')));
        else {
          const { run, acks } = await asyncRound(perRound);
          runs.async.push(run);
          ackRuns.push(acks);
        }
        // Webhook-free tasks: what is left on Redis after a round is done is the consumer's idle polling.
        addDelta(commands[delivery], before, await commandCalls(admin));
        counted[delivery] += perRound;
        progress.advance(runs.sync.length + runs.async.length);
      }
    }
    progress.finish();
  } finally {
    await pool.close();
    await queue.close();
    // A connection handed to BullMQ is the caller's to close.
    queueConnection.disconnect();
    admin.disconnect();
    await Promise.all([gateway.stop(), worker.stop()]);
    await redis.stop();
  }

  const sync = summarise(runs.sync);
  const asyncSummary = summarise(runs.async);
  const acks = summarise(ackRuns);
  const perTask = (delivery: 'sync' | 'async') => {
    const table = [...commands[delivery]].filter(([, calls]) => calls > 0).sort((a, b) => b[1] - a[1]);
    const total = table.reduce((sum, [, calls]) => sum + calls, 0) / counted[delivery];
    const scripts = ((commands[delivery].get('evalsha') ?? 0) + (commands[delivery].get('eval') ?? 0)) / counted[delivery];
    return `${total.toFixed(1)} commands/task, of them ${scripts.toFixed(1)} scripts (EVALSHA): ${table.map(([command, calls]) => `${command} ${(calls / counted[delivery]).toFixed(2)}`).join(', ')}`;
  };
  const lines = [
    `async vs sync: one gateway with Redis (ledger + BullMQ), fake worker answering at once; ${concurrency} senders; ${perRound * rounds} tasks/kind in ${rounds} alternating rounds after a warm-up of ${warmup}; 1 task (512×512 PNG, base64) per request`,
    `note: 1-minute load average before the run: ${loadBefore.toFixed(2)}; gateway, Redis, fake worker and this generator share the machine`,
    `${'kind'.padEnd(44)}${'tasks/s'.padStart(9)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}`,
    `${'sync (answer with the image)'.padEnd(44)}${sync.throughput.toFixed(0).padStart(9)}${sync.p50.toFixed(2).padStart(9)}${sync.p99.toFixed(2).padStart(9)}`,
    `${'async (finished: acknowledged, run, recorded)'.padEnd(44)}${asyncSummary.throughput.toFixed(0).padStart(9)}${'-'.padStart(9)}${'-'.padStart(9)}`,
    `${'async acknowledgement alone'.padEnd(44)}${acks.throughput.toFixed(0).padStart(9)}${acks.p50.toFixed(2).padStart(9)}${acks.p99.toFixed(2).padStart(9)}`,
    `throughput ratio async/sync: ${(asyncSummary.throughput / sync.throughput).toFixed(2)}`,
    `Redis per sync task: ${perTask('sync')}`,
    `Redis per async task: ${perTask('async')}`,
  ];
  const chart = writeLatencyChart('async-vs-sync', `sync answer vs async acknowledgement: ${concurrency} senders`, [
    { label: 'sync (answer with the image)', latenciesMs: runs.sync.flatMap((run) => run.latenciesMs) },
    { label: 'async acknowledgement', latenciesMs: ackRuns.flatMap((run) => run.latenciesMs) },
  ]);
  lines.push(`latency chart: ${chart}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (args['serve-fake-worker']) await serveFakeWorker();
else {
  await main();
  process.exit(0);
}
