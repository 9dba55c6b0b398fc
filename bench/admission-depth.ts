/**
 * What a finished job costs the gateway when many tasks wait (issue 15): the worker pool's admission queue
 * holds `--depth` tasks for a full worker, and each of `--releases` finished jobs hands its slot to the next.
 * Two fleets side by side in one run: the waiting model's worker alone (`alone`), and the same beside an idle
 * worker that serves only another model (`beside an idle worker`: room that none of the waiting tasks can use).
 * Prints CPU µs per finished job for both and their ratio. Real fake workers over HTTP (health, loopback),
 * the real pool; nothing else.
 *
 *   npm run bench:admission [-- --depth 2000 --releases 1000 --rounds 3]
 *
 * Bounded: every waiter has a deadline, and the script exits when done. Loopback only.
 */
import { parseArgs } from 'node:util';
import { createCancellation } from '../src/contracts/cancellation.js';
import { silentMetrics } from '../src/contracts/metrics-recorder.js';
import { createWorkerPool, type WorkerLease } from '../src/dispatch/worker-pool.js';
import { startFakeWorker } from '../test/support/fake-worker.js';

const { values: args } = parseArgs({
  options: {
    depth: { type: 'string', default: '2000' },
    releases: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '3' },
  },
});
const depth = Number(args.depth);
const releases = Number(args.releases);
const rounds = Number(args.rounds);
for (const [name, value] of Object.entries({ depth, releases, rounds })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
}
if (releases > depth) throw new Error('--releases must not exceed --depth: each finished job needs a waiting task to take its slot');

const WAITING_MODEL = 'civitai:4384@128713';
const OTHER_MODEL = 'civitai:101055@128078';
const SLOTS = 4;

/** CPU µs per finished job with `depth` tasks waiting for the full worker. */
async function measure(fleet: 'alone' | 'beside'): Promise<number> {
  const busy = await startFakeWorker({ maxConcurrency: SLOTS, models: [{ air: WAITING_MODEL, family: 'sd1', loaded: true }] });
  const idle = await startFakeWorker({ maxConcurrency: SLOTS, models: [{ air: OTHER_MODEL, family: 'sdxl', loaded: true }] });
  const pool = createWorkerPool({
    urls: fleet === 'alone' ? [busy.url] : [busy.url, idle.url],
    healthIntervalMs: 600_000,
    healthTimeoutMs: 2000,
    queueMax: depth + SLOTS,
    breaker: { failureThreshold: 5, cooldownMs: 1000 },
    clock: Date.now,
    random: Math.random,
    logger: { info: () => undefined, warn: () => undefined },
    recorder: silentMetrics,
  });
  try {
    for (let waited = 0; !pool.workers.every((worker) => worker.healthy); waited += 20) {
      if (waited > 10_000) throw new Error('the fake workers did not become healthy');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const running: WorkerLease[] = [];
    const acquire = () => Promise.resolve(pool.acquire({ model: WAITING_MODEL }, new Set(), createCancellation(), 60_000));
    for (let slot = 0; slot < SLOTS; slot++) running.push(await acquire());
    const waiting = Array.from({ length: depth }, () => acquire().then((lease) => {
      running.push(lease);
    }));
    const started = process.cpuUsage();
    for (let release = 0; release < releases; release++) {
      running.shift()!.release('success');
      // The next waiter's lease arrives on a microtask.
      await Promise.resolve();
    }
    const used = process.cpuUsage(started);
    // Let the rest go: every waiter ends before the pool closes.
    while (running.length > 0) {
      running.shift()!.release('neutral');
      await Promise.resolve();
    }
    await Promise.all(waiting);
    return (used.user + used.system) / releases;
  } finally {
    await pool.close();
    await Promise.all([busy.close(), idle.close()]);
  }
}

const results: Record<'alone' | 'beside', number[]> = { alone: [], beside: [] };
for (let round = 0; round < rounds; round++) {
  results.alone.push(await measure('alone'));
  results.beside.push(await measure('beside'));
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const [alone, beside] = [median(results.alone), median(results.beside)];
console.log(`admission queue: ${depth} tasks waiting for a full worker of ${SLOTS} slots, ${releases} finished jobs, ${rounds} alternating rounds (median)`);
console.log(`CPU µs per finished job, the worker alone:           ${alone.toFixed(1)}   (rounds: ${results.alone.map((value) => value.toFixed(0)).join(', ')})`);
console.log(`CPU µs per finished job, beside an idle other worker: ${beside.toFixed(1)}   (rounds: ${results.beside.map((value) => value.toFixed(0)).join(', ')})`);
console.log(`ratio beside/alone: ${(beside / alone).toFixed(2)}`);
process.exit(0);
