import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeBehaviour } from '../support/fake-registry.js';
import { defaultFakeWorkerBehaviour, type FakeWorkerBehaviour } from '../support/fake-worker.js';
import { reliabilityProfile, recordResult } from './profile.js';
import {
  embeddingAir,
  imageTask,
  invariantBreaches,
  processFootprint,
  sendLoad,
  startReliabilityStack,
  succeeded,
  tally,
  untilServed,
  type Outcome,
  type ReliabilityStack,
} from './reliability-stack.js';

/**
 * The fault matrix: Redis killed and restarted, a registry that hangs, fails, answers garbage or without end,
 * and workers that crash, hang, break the protocol or lie — each played on a real part while a load of
 * requests runs through a real gateway process. In every case every request gets an HTTP answer, none is a
 * 500, each task is answered once; what the fault allows succeeds, the rest fails retryably and says why, and
 * the gateway serves normally once the fault is gone. Counts and outcomes go to docs/reliability.md.
 */

const N = reliabilityProfile.requestsPerCase;
const CONCURRENCY = 8;
const LOOKUP_DEADLINE_MS = 2500;
const WARM = 10;
const env = {
  TASK_FIRST_BYTE_TIMEOUT_MS: '2000',
  TASK_PROGRESS_TIMEOUT_MS: '1000',
  TASK_TIMEOUT_MS: '15000',
  REGISTRY_TIMEOUT_MS: '1000',
  REGISTRY_LOOKUP_DEADLINE_MS: String(LOOKUP_DEADLINE_MS),
  // The breaker never opens here, so every task keeps meeting the faulty worker and each of its answers is
  // checked; that the breaker opens is test/integration/dispatch.test.ts's business.
  BREAKER_FAILURE_THRESHOLD: '1000',
  BREAKER_COOLDOWN_MS: '500',
  DISPATCH_MAX_ATTEMPTS: '3',
};

let stack: ReliabilityStack;
let nextCold = WARM;
/** An embedding no request has named yet: its lookup goes to the registry. */
const coldEmbedding = () => embeddingAir(nextCold++);
const withEmbedding = (air: string) => imageTask({ embeddings: [{ model: air, weight: 0.5 }] });

const workerDefaults: FakeWorkerBehaviour = { ...defaultFakeWorkerBehaviour, latencyMs: 20 };
const registryDefaults: FakeBehaviour = { latencyMs: 0, failNext: 0, failStatus: 503, retryAfter: '', hang: false, lookupBody: 'json', ranges: true };

beforeAll(async () => {
  stack = await startReliabilityStack({ embeddings: WARM + N * 4 + 20, env });
  stack.faulty.setBehaviour(workerDefaults);
  stack.good.setBehaviour(workerDefaults);
  // The warm embeddings are looked up once, before any fault.
  const warmed = await sendLoad(stack.port, { requests: WARM, concurrency: WARM, tasks: (index) => [withEmbedding(embeddingAir(index))] });
  expect(succeeded(warmed)).toBe(WARM);
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

function expectInvariants(outcomes: readonly Outcome[]): void {
  expect(invariantBreaches(outcomes)).toStrictEqual([]);
}

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Redis', () => {
  it('killed mid-load and restarted: every request is served from the gateway’s own tiers, then from Redis again', async () => {
    const before = await sendLoad(stack.port, { requests: N / 2, concurrency: CONCURRENCY, tasks: () => [withEmbedding(coldEmbedding())] });
    await stack.redis.kill();
    const down = await sendLoad(stack.port, { requests: N, concurrency: CONCURRENCY, tasks: (index) => [withEmbedding(index % 2 ? coldEmbedding() : embeddingAir(index % WARM))] });
    await stack.redis.restart();
    const after = await sendLoad(stack.port, { requests: N / 2, concurrency: CONCURRENCY, tasks: () => [withEmbedding(coldEmbedding())] });
    const all = [...before, ...down, ...after];
    recordResult('fault: Redis killed and restarted', { requests: all.length, outcomes: tally(all) });
    expectInvariants(all);
    expect(succeeded(all)).toBe(all.length);
  }, 120_000);
});

describe('the model registry', () => {
  const registryFaults: { name: string; behaviour: Partial<FakeBehaviour>; code: string }[] = [
    { name: 'hangs', behaviour: { hang: true }, code: 'modelUnavailable' },
    { name: 'answers 500', behaviour: { failNext: 1_000_000_000, failStatus: 500 }, code: 'modelUnavailable' },
    { name: 'answers garbage', behaviour: { lookupBody: 'garbage' }, code: 'modelUnavailable' },
    { name: 'answers without end', behaviour: { lookupBody: 'huge' }, code: 'modelUnavailable' },
  ];

  for (const fault of registryFaults) {
    it(`${fault.name}: cached models are served, cold ones fail retryably within the lookup deadline, and succeed once it is back`, async () => {
      const footprintBefore = processFootprint(stack.gateway.child.pid!);
      stack.registry.setBehaviour({ ...registryDefaults, ...fault.behaviour });
      const colds: string[] = [];
      const outcomes = await sendLoad(stack.port, {
        requests: N,
        concurrency: CONCURRENCY,
        tasks: (index) => {
          if (index % 2 === 0) return [withEmbedding(embeddingAir(index % WARM))];
          const air = coldEmbedding();
          colds.push(air);
          return [withEmbedding(air)];
        },
      });
      const footprintDuring = processFootprint(stack.gateway.child.pid!);
      stack.registry.setBehaviour(registryDefaults);
      const warm = outcomes.filter((_, index) => index % 2 === 0);
      const cold = outcomes.filter((_, index) => index % 2 === 1);
      const slowestColdMs = Math.max(...cold.map((outcome) => outcome.ms));

      // Back: the same cold AIRs resolve once their outage marker (5 s, so an outage is not asked again by
      // every request) has passed — an outage is never remembered as "not found".
      const recoveryStarted = Date.now();
      let recovered: Outcome[] = [];
      while (Date.now() - recoveryStarted < 20_000) {
        recovered = await sendLoad(stack.port, { requests: Math.min(colds.length, 8), concurrency: 4, tasks: (index) => [withEmbedding(colds[index]!)] });
        expectInvariants(recovered);
        if (succeeded(recovered) === recovered.length) break;
        await settle(500);
      }
      const recoveredAfterMs = Date.now() - recoveryStarted;
      recordResult(`fault: registry ${fault.name}`, {
        requests: outcomes.length + recovered.length,
        outcomes: tally(outcomes),
        afterRecovery: tally(recovered),
        slowestColdMs: Math.round(slowestColdMs),
        recoveredAfterMs,
        rssMiB: { before: footprintBefore.rssMiB, during: footprintDuring.rssMiB },
      });
      expectInvariants([...outcomes, ...recovered]);
      expect(succeeded(warm)).toBe(warm.length);
      for (const outcome of cold) expect(outcome.errors[0]).toMatchObject({ code: fault.code, retryable: true });
      // The deadline plus the queue in front of the registry's concurrency, not the registry's whims.
      expect(slowestColdMs).toBeLessThan(LOOKUP_DEADLINE_MS + 5000);
      expect(footprintDuring.rssMiB - footprintBefore.rssMiB).toBeLessThan(256);
      expect(succeeded(recovered)).toBe(recovered.length);
    }, 180_000);
  }
});

describe('workers', () => {
  const workerFaults: { name: string; behaviour: Partial<FakeWorkerBehaviour> }[] = [
    { name: 'crashes after accepted', behaviour: { crashAfterAccept: true } },
    { name: 'hangs after accepted', behaviour: { hangAfterAccept: true } },
    { name: 'never answers a job', behaviour: { hang: true } },
    { name: 'answers 500', behaviour: { failureRate: 1 } },
    { name: 'sends malformed NDJSON', behaviour: { malformedLine: true } },
    { name: 'sends a result of another job', behaviour: { resultJobId: 'some-other-job.1' } },
    { name: 'sends more images than asked', behaviour: { extraImages: 1 } },
    { name: 'sends a second result', behaviour: { resultTwice: true } },
    { name: 'sends images with seeds of another job', behaviour: { seedOffset: 7 } },
    { name: 'sends a line longer than the job can need', behaviour: { pngBytes: 1_000_000 } },
    { name: 'answers health with garbage', behaviour: { healthGarbage: true } },
  ];

  for (const fault of workerFaults) {
    it(`${fault.name}: beside a good worker every task succeeds on it; alone, every task fails retryably`, async () => {
      stack.faulty.setBehaviour({ ...workerDefaults, ...fault.behaviour });
      // A health fault takes two polls to notice; a job fault is noticed by the job.
      if (fault.behaviour.healthGarbage) await settle(800);
      const faultyJobsBefore = stack.faulty.stats.jobs();
      const goodCompletedBefore = stack.good.stats.completed();
      const beside = await sendLoad(stack.port, { requests: N, concurrency: CONCURRENCY, tasks: () => [imageTask()] });
      const deliveredByGood = stack.good.stats.completed() - goodCompletedBefore;
      const faultyJobs = stack.faulty.stats.jobs() - faultyJobsBefore;

      stack.good.setBehaviour({ healthStatus: 'draining' });
      await settle(600);
      const alone = await sendLoad(stack.port, { requests: Math.max(4, N / 4), concurrency: CONCURRENCY, tasks: () => [imageTask()] });
      const faultyJobsAlone = stack.faulty.stats.jobs() - faultyJobsBefore - faultyJobs;

      // Well again, the faulty worker must serve alone before the next case (a success closes its breaker).
      stack.faulty.setBehaviour(workerDefaults);
      await untilServed(stack);
      stack.good.setBehaviour(workerDefaults);
      await settle(600);
      recordResult(`fault: a worker ${fault.name}`, {
        requests: beside.length + alone.length,
        beside: tally(beside),
        alone: tally(alone),
        jobsSentToFaultyWorker: { beside: faultyJobs, alone: faultyJobsAlone },
      });
      expectInvariants([...beside, ...alone]);
      expect(succeeded(beside)).toBe(beside.length);
      // Every image delivered came from the good worker: nothing the faulty one sent was taken.
      expect(deliveredByGood).toBe(beside.length);
      if (!fault.behaviour.healthGarbage) expect(faultyJobs).toBeGreaterThan(0);
      expect(succeeded(alone)).toBe(0);
      for (const outcome of alone) {
        expect([502, 503, 504]).toContain(outcome.status);
        expect(outcome.errors[0]?.retryable).toBe(true);
      }
      // Alone, the faulty worker got the tasks (except the one the gateway no longer trusts for its health).
      if (!fault.behaviour.healthGarbage) expect(faultyJobsAlone).toBeGreaterThanOrEqual(alone.length);
    }, 180_000);
  }
});
