import { afterEach, describe, expect, it } from 'vitest';
import { createCancellation } from '../../src/contracts/cancellation.js';
import { silentMetrics } from '../../src/contracts/metrics-recorder.js';
import { createWorkerPool, type WorkerLease, type WorkerPool } from '../../src/dispatch/worker-pool.js';
import { startFakeWorker, type FakeWorker } from '../support/fake-worker.js';
import { until } from '../support/gateway.js';
import { seededRandom } from '../support/seeded-random.js';

const MODEL = 'civitai:101055@128078';
const open: { close(): Promise<void> }[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((item) => item.close()));
});

async function pool(workers: readonly FakeWorker[], seed: number): Promise<WorkerPool> {
  const created = createWorkerPool({
    urls: workers.map((worker) => worker.url),
    healthIntervalMs: 60_000,
    healthTimeoutMs: 2000,
    queueMax: 10,
    breaker: { failureThreshold: 5, cooldownMs: 1000 },
    clock: Date.now,
    random: seededRandom(seed),
    logger: { info: () => undefined, warn: () => undefined },
    recorder: silentMetrics,
  });
  open.push(created);
  await until(() => created.workers.every((worker) => worker.healthy));
  return created;
}

describe('the worker pool', () => {
  it('sends a model to the worker already holding jobs of it, not to an idler one that would swap it in again', async () => {
    // Two workers with 8 slots each, neither with the model loaded (and no health report to say otherwise).
    const workers = await Promise.all([startFakeWorker({ maxConcurrency: 8 }), startFakeWorker({ maxConcurrency: 8 })]);
    open.push(...workers);
    for (let seed = 1; seed <= 10; seed++) {
      const created = await pool(workers, seed);
      const leases: WorkerLease[] = [];
      for (let task = 0; task < 6; task++) leases.push(await created.acquire(MODEL, new Set(), createCancellation(), 1000));
      // The first lease picks a worker; every later one joins it, although the other has all its slots free.
      expect(new Set(leases.map((lease) => lease.worker.id)).size).toBe(1);
      for (const lease of leases) lease.release('neutral');
      // Released: nothing is held, and the model is not thought loaded anywhere (no job finished).
      expect(created.workers.map((worker) => worker.heldModels.size)).toEqual([0, 0]);
      expect(created.workers.some((worker) => worker.hasLoaded(MODEL))).toBe(false);
    }
  });

  it('spills to another worker once the one holding the model is full', async () => {
    const workers = await Promise.all([startFakeWorker({ maxConcurrency: 2 }), startFakeWorker({ maxConcurrency: 2 })]);
    open.push(...workers);
    const created = await pool(workers, 7);
    const leases: WorkerLease[] = [];
    for (let task = 0; task < 4; task++) leases.push(await created.acquire(MODEL, new Set(), createCancellation(), 1000));
    const perWorker = new Map<string, number>();
    for (const lease of leases) perWorker.set(lease.worker.id, (perWorker.get(lease.worker.id) ?? 0) + 1);
    expect([...perWorker.values()]).toEqual([2, 2]);
    for (const lease of leases) lease.release('success');
  });
});
