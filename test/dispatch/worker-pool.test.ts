import { afterEach, describe, expect, it } from 'vitest';
import { createCancellation } from '../../src/contracts/cancellation.js';
import { silentMetrics } from '../../src/contracts/metrics-recorder.js';
import { createWorkerPool, type PooledWorker, type WorkerLease, type WorkerPool } from '../../src/dispatch/worker-pool.js';
import { startFakeWorker, type FakeWorker } from '../support/fake-worker.js';
import { until } from '../support/gateway.js';
import { seededRandom } from '../support/seeded-random.js';

const MODEL = 'civitai:101055@128078';
const open: { close(): Promise<void> }[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((item) => item.close()));
});

async function pool(workers: readonly FakeWorker[], seed: number, typicalJobMs?: number): Promise<WorkerPool> {
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
    ...(typicalJobMs !== undefined && { typicalJobMs }),
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
      for (let task = 0; task < 6; task++) leases.push(await created.acquire({ model: MODEL }, new Set(), createCancellation(), 1000));
      // The first lease picks a worker; every later one joins it, although the other has all its slots free.
      expect(new Set(leases.map((lease) => lease.worker.id)).size).toBe(1);
      for (const lease of leases) lease.release('neutral');
      // Released: nothing is held, and the model is not thought loaded anywhere (no job finished).
      expect(created.workers.map((worker) => worker.heldModels.size)).toEqual([0, 0]);
      expect(created.workers.some((worker) => worker.hasLoaded(MODEL))).toBe(false);
    }
  });

  it('spills to another worker once the one holding the model stays full for about as long as a job takes', async () => {
    const workers = await Promise.all([startFakeWorker({ maxConcurrency: 2 }), startFakeWorker({ maxConcurrency: 2 })]);
    open.push(...workers);
    const created = await pool(workers, 7, 150);
    const leases: WorkerLease[] = [];
    for (let task = 0; task < 2; task++) leases.push(await created.acquire({ model: MODEL }, new Set(), createCancellation(), 1000));
    const started = performance.now();
    for (let task = 0; task < 2; task++) leases.push(await created.acquire({ model: MODEL }, new Set(), createCancellation(), 1000));
    // The other worker had room all along; it is taken only once waiting for the first one's slots stopped paying.
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    const perWorker = new Map<string, number>();
    for (const lease of leases) perWorker.set(lease.worker.id, (perWorker.get(lease.worker.id) ?? 0) + 1);
    expect([...perWorker.values()]).toEqual([2, 2]);
    for (const lease of leases) lease.release('success');
  });

  it('waits for a slot on the worker holding the model rather than swap it in on an idle one', async () => {
    const workers = await Promise.all([startFakeWorker({ maxConcurrency: 2 }), startFakeWorker({ maxConcurrency: 2 })]);
    open.push(...workers);
    const created = await pool(workers, 3, 5000);
    const leases = [await created.acquire({ model: MODEL }, new Set(), createCancellation(), 1000), await created.acquire({ model: MODEL }, new Set(), createCancellation(), 1000)];
    const holder = leases[0]!.worker.id;
    const waiting = created.acquire({ model: MODEL }, new Set(), createCancellation(), 1000);
    expect(waiting).toBeInstanceOf(Promise);
    setTimeout(() => leases[0]!.release('success'), 50);
    const freed = await waiting;
    expect(freed.worker.id).toBe(holder);
    // With nowhere to wait (the queue is full), a free slot elsewhere is taken at once.
    const full = await pool(workers, 3, 5000);
    const busy = [await full.acquire({ model: MODEL }, new Set(), createCancellation(), 1000), await full.acquire({ model: MODEL }, new Set(), createCancellation(), 1000)];
    // Each queued task lets its slot go as soon as it has one.
    const queued = Array.from({ length: 10 }, () => Promise.resolve(full.acquire({ model: MODEL }, new Set(), createCancellation(), 5000)).then((lease) => lease.release('neutral')));
    const overflow = full.acquire({ model: MODEL }, new Set(), createCancellation(), 1000);
    expect(overflow).not.toBeInstanceOf(Promise);
    expect((overflow as WorkerLease).worker.id).not.toBe(busy[0]!.worker.id);
    for (const lease of [...leases.slice(1), freed, ...busy, overflow as WorkerLease]) lease.release('neutral');
    await Promise.all(queued);
  });

  it('sends a task where jobs of its batch key wait once every worker with the model is busy, and counts keys only on workers that batch', async () => {
    const loaded = [{ air: MODEL, family: 'sdxl' as const, loaded: true }];
    const gpu = { stepMs: 1, swapMs: 1, maxLoadedModels: 1 };
    const workers = await Promise.all([startFakeWorker({ maxConcurrency: 8, models: loaded, gpu: { ...gpu, batchSize: 4 } }), startFakeWorker({ maxConcurrency: 8, models: loaded, gpu })]);
    open.push(...workers);
    for (let seed = 1; seed <= 10; seed++) {
      const created = await pool(workers, seed);
      const [batching, plain] = created.workers as [PooledWorker, PooledWorker];
      // Both busy with one job of another key each: neither is idle, neither holds the key yet.
      const busy = [await created.acquire({ model: MODEL, batchKey: 'other' }, new Set([plain.id]), createCancellation(), 1000), await created.acquire({ model: MODEL, batchKey: 'other' }, new Set([batching.id]), createCancellation(), 1000)];
      expect(busy.map((lease) => lease.worker.id)).toEqual([batching.id, plain.id]);
      expect(plain.heldBatches.size).toBe(0);
      const first = await created.acquire({ model: MODEL, batchKey: 'k' }, new Set([plain.id]), createCancellation(), 1000);
      // Every later task of key k joins the batching worker, although the plain one is as loaded or less.
      const later: WorkerLease[] = [];
      for (let task = 0; task < 3; task++) later.push(await created.acquire({ model: MODEL, batchKey: 'k' }, new Set(), createCancellation(), 1000));
      expect(later.map((lease) => lease.worker.id)).toEqual([batching.id, batching.id, batching.id]);
      expect(batching.heldBatches.get('k')).toBe(4);
      for (const lease of [...busy, first, ...later]) lease.release('neutral');
      expect(created.workers.map((worker) => worker.heldBatches.size)).toEqual([0, 0]);
    }
  });

  it('swaps a model in on a worker with a free model slot rather than one that would unload another', async () => {
    const OTHER = 'civitai:4384@128713';
    const gpu = { stepMs: 1, swapMs: 1, maxLoadedModels: 1 };
    const models = (loaded: boolean) => [
      { air: MODEL, family: 'sdxl' as const, loaded: false },
      { air: OTHER, family: 'sd1' as const, loaded },
    ];
    const workers = await Promise.all([startFakeWorker({ maxConcurrency: 8, models: models(true), gpu }), startFakeWorker({ maxConcurrency: 8, models: models(false), gpu })]);
    open.push(...workers);
    for (let seed = 1; seed <= 10; seed++) {
      const created = await pool(workers, seed);
      const [full, roomy] = created.workers as [PooledWorker, PooledWorker];
      expect([full.hasFreeModelSlot(), roomy.hasFreeModelSlot()]).toEqual([false, true]);
      // The roomy worker is busier, yet taking MODEL there unloads nothing.
      const busy = [await created.acquire({ model: OTHER }, new Set([full.id]), createCancellation(), 1000), await created.acquire({ model: OTHER }, new Set([full.id]), createCancellation(), 1000)];
      expect(roomy.hasFreeModelSlot()).toBe(false);
      for (const lease of busy) lease.release('neutral');
      expect(roomy.hasFreeModelSlot()).toBe(true);
      const held = await created.acquire({ model: OTHER }, new Set([full.id]), createCancellation(), 1000);
      held.release('neutral');
      const lease = await created.acquire({ model: MODEL }, new Set(), createCancellation(), 1000);
      expect(lease.worker.id).toBe(roomy.id);
      lease.release('neutral');
    }
  });
});

