import type { FastifyBaseLogger } from 'fastify';
import { Pool } from 'undici';
import { createAdmissionQueue, type Claim } from './admission-queue.js';
import type { Cancellation } from '../contracts/cancellation.js';
import type { MetricsRecorder } from '../contracts/metrics-recorder.js';
import { createCircuitBreaker, type CircuitBreaker } from './circuit-breaker.js';
import { selectWorker, type Placement, type WorkerCandidate } from './select-worker.js';
import { workerHealthSchema, type WorkerCapability, type WorkerHealth } from './worker-protocol.js';

/**
 * The GPU workers of WORKER_URLS: one keep-alive undici Pool each, their health polled on an interval,
 * their in-flight jobs counted here (fresher than any poll), a circuit breaker each, and the admission
 * queue for tasks that find every eligible worker full.
 */

export interface PooledWorker extends WorkerCandidate {
  readonly url: string;
  readonly http: Pool;
  readonly breaker: CircuitBreaker;
  health: WorkerHealth | undefined;
  healthy: boolean;
  /** Health polls failed in a row; one lost poll is not an outage. */
  failedPolls: number;
  inFlight: number;
  /** Models this gateway ran there since the last health report: loaded now, whatever the report said. */
  readonly loadedHere: Set<string>;
  /**
   * Jobs of each model this replica has running or queued there now: a job sent behind them finds the model
   * loaded, its swap paid for by the first (the health report says so only once that first job has started).
   */
  readonly heldModels: Map<string, number>;
  /** Jobs of each batch key this replica has running or queued there now (kept only for workers that batch). */
  readonly heldBatches: Map<string, number>;
  /** The last health report's models, and those it says are loaded, as sets: selection asks for every task. */
  readonly reportedModels: Set<string>;
  readonly reportedLoaded: Set<string>;
  /** The optional protocol features of its last health report. */
  readonly capabilities: Set<string>;
}

export class NoWorkerError extends Error {
  override readonly name = 'NoWorkerError';
  /** Set when workers serve the model but none has this capability the task needs. */
  constructor(
    message: string,
    readonly missingCapability?: WorkerCapability,
  ) {
    super(message);
  }
}

export type LeaseOutcome = 'success' | 'failure' | 'neutral';

export interface WorkerLease {
  readonly worker: PooledWorker;
  /** Frees the slot; `failure` counts against the worker's breaker, `neutral` (a cancellation) does not. */
  release(outcome: LeaseOutcome): void;
}

export interface WorkerPool {
  readonly workers: readonly PooledWorker[];
  /**
   * A slot on a worker serving the placement's model, with its capabilities, preferring workers not in
   * `exclude` (those already tried): at once when one is free, else a promise of one from the admission queue.
   * Throws (or rejects with) NoWorkerError, QueueFullError, QueueTimeoutError, or the cancellation's reason.
   */
  acquire(placement: Placement, exclude: ReadonlySet<string>, cancellation: Cancellation, maxWaitMs: number): WorkerLease | Promise<WorkerLease>;
  /** A client's fair wait before trying again, from the queue's length and how long jobs take. */
  retryAfterSeconds(): number;
  readonly queueLength: number;
  refreshHealth(): Promise<void>;
  /** Polls one worker's health now: it just said something that contradicts its last report. */
  recheck(worker: PooledWorker): Promise<void>;
  close(): Promise<void>;
}

/** Consecutive failed polls before a worker is taken out; a single lost poll is noise. */
const UNHEALTHY_AFTER_FAILED_POLLS = 2;

export interface WorkerPoolOptions {
  readonly urls: readonly string[];
  readonly healthIntervalMs: number;
  readonly healthTimeoutMs: number;
  readonly queueMax: number;
  readonly breaker: { readonly failureThreshold: number; readonly cooldownMs: number };
  readonly clock: () => number;
  readonly random: () => number;
  readonly logger: Pick<FastifyBaseLogger, 'info' | 'warn'>;
  readonly recorder: MetricsRecorder;
  /** What a job is taken to last before any has finished here (Retry-After, and how long a task waits for its model); default 3000. */
  readonly typicalJobMs?: number;
}

export function createWorkerPool(options: WorkerPoolOptions): WorkerPool {
  // Room: some worker could take a job now (selection asks more of it; without this, no claim can succeed).
  const queue = createAdmissionQueue<WorkerLease>(options.queueMax, () => workers.some((worker) => worker.inFlight < worker.capacity && worker.available));
  // Exponentially weighted mean of job durations, for Retry-After; starts at a typical SD 1.5 job.
  let meanJobMs = options.typicalJobMs ?? 3000;

  const workers: PooledWorker[] = options.urls.map((url) => {
    const origin = new URL(url).origin;
    const worker: PooledWorker = {
      id: origin,
      url: origin,
      // No connection cap: the worker's own maxConcurrency, counted here, bounds the jobs in flight, and a
      // cancel must never wait behind them for a socket.
      http: new Pool(origin, { connections: null, keepAliveTimeout: 30_000, pipelining: 1 }),
      breaker: createCircuitBreaker({ ...options.breaker, clock: options.clock }),
      health: undefined,
      healthy: false,
      failedPolls: 0,
      inFlight: 0,
      loadedHere: new Set<string>(),
      heldModels: new Map<string, number>(),
      heldBatches: new Map<string, number>(),
      get available() {
        return worker.healthy && worker.breaker.canAttempt();
      },
      get capacity() {
        return worker.health?.maxConcurrency ?? 1;
      },
      reportedModels: new Set<string>(),
      reportedLoaded: new Set<string>(),
      capabilities: new Set<string>(),
      serves: (model) => worker.reportedModels.has(model),
      can: (capability) => worker.capabilities.has(capability),
      hasLoaded: (model) => worker.heldModels.has(model) || worker.loadedHere.has(model) || worker.reportedLoaded.has(model),
      holdsBatchable: (key) => worker.heldBatches.has(key),
      hasFreeModelSlot: () => {
        const max = worker.health?.maxLoadedModels;
        if (max === undefined) return false;
        // What is loaded by the report, plus what this replica's jobs loaded or will load since.
        let models = worker.reportedLoaded.size;
        for (const model of worker.loadedHere) if (!worker.reportedLoaded.has(model)) models++;
        for (const model of worker.heldModels.keys()) if (!worker.reportedLoaded.has(model) && !worker.loadedHere.has(model)) models++;
        return models < max;
      },
    };
    return worker;
  });

  function claim(placement: Placement, exclude: ReadonlySet<string>): Claim<WorkerLease> {
    const { model } = placement;
    let selection = selectWorker(workers, placement, exclude, options.random);
    // Every eligible worker was tried already: trying one again beats giving up.
    if ((selection.kind === 'none' || selection.kind === 'incapable') && exclude.size > 0) selection = selectWorker(workers, placement, new Set(), options.random);
    if (selection.kind === 'none') {
      return { kind: 'fail', error: new NoWorkerError(`no healthy worker serves model "${model}"`) };
    }
    if (selection.kind === 'incapable') {
      const missing = selection.missing as WorkerCapability;
      return { kind: 'fail', error: new NoWorkerError(`no healthy worker serving model "${model}" has ${missing}`, missing) };
    }
    if (selection.kind === 'full') return { kind: 'wait' };
    const worker = selection.worker;
    worker.inFlight++;
    countUp(worker.heldModels, model);
    // Counted only where it can matter: a worker that batches, a task that says its key.
    const batchKey = placement.batchKey !== undefined && (worker.health?.batchSize ?? 1) > 1 ? placement.batchKey : undefined;
    if (batchKey !== undefined) countUp(worker.heldBatches, batchKey);
    worker.breaker.onAttempt();
    const started = options.clock();
    let released = false;
    return {
      kind: 'taken',
      value: {
        worker,
        release(outcome) {
          if (released) return;
          released = true;
          worker.inFlight--;
          countDown(worker.heldModels, model);
          if (batchKey !== undefined) countDown(worker.heldBatches, batchKey);
          if (outcome === 'success') {
            worker.breaker.onSuccess();
            worker.loadedHere.add(model);
            meanJobMs = 0.9 * meanJobMs + 0.1 * (options.clock() - started);
          } else if (outcome === 'neutral') {
            worker.breaker.onNeutral();
          } else {
            const wasOpen = worker.breaker.state() !== 'closed';
            worker.breaker.onFailure();
            if (!wasOpen && worker.breaker.state() !== 'closed') {
              options.logger.warn({ worker: worker.url }, 'worker breaker opened after repeated failures');
              // Tasks waiting for only this worker now fail at once (noAvailableWorker) instead of at their deadline.
              queue.pumpAll();
              return;
            }
          }
          queue.pump();
        },
      },
    };
  }

  async function checkHealth(worker: PooledWorker): Promise<void> {
    const wasHealthy = worker.healthy;
    try {
      const response = await worker.http.request({
        path: '/v1/health',
        method: 'GET',
        headersTimeout: options.healthTimeoutMs,
        bodyTimeout: options.healthTimeoutMs,
        signal: AbortSignal.timeout(options.healthTimeoutMs),
      });
      const body: unknown = await response.body.json();
      const health = response.statusCode === 200 ? workerHealthSchema.safeParse(body) : undefined;
      if (!health?.success) throw new Error(`health answered ${response.statusCode} outside protocol v1`);
      worker.health = health.data;
      worker.reportedModels.clear();
      worker.reportedLoaded.clear();
      worker.capabilities.clear();
      for (const capability of health.data.capabilities ?? []) worker.capabilities.add(capability);
      for (const model of health.data.models) {
        worker.reportedModels.add(model.air);
        if (model.loaded) worker.reportedLoaded.add(model.air);
      }
      // A worker that says it is starting or draining is taken at its word at once.
      worker.healthy = worker.health.status === 'ready';
      worker.failedPolls = 0;
      // A fresh report of what is loaded replaces our guesses.
      worker.loadedHere.clear();
    } catch {
      worker.failedPolls++;
      if (worker.failedPolls >= UNHEALTHY_AFTER_FAILED_POLLS) worker.healthy = false;
    }
    // Back after an outage (a restart): what opened the breaker is over; one trial job decides at once.
    if (!wasHealthy && worker.healthy) worker.breaker.onRecovered();
    if (wasHealthy !== worker.healthy) {
      options.logger[worker.healthy ? 'info' : 'warn']({ worker: worker.url, status: worker.health?.status ?? 'unreachable' }, worker.healthy ? 'worker is ready' : 'worker is not available');
    }
  }

  async function refreshHealth(): Promise<void> {
    await Promise.all(workers.map(checkHealth));
    queue.pumpAll();
  }

  async function recheck(worker: PooledWorker): Promise<void> {
    await checkHealth(worker);
    queue.pumpAll();
  }

  const poller = setInterval(() => {
    void refreshHealth();
  }, options.healthIntervalMs);
  poller.unref();
  void refreshHealth();

  return {
    workers,
    acquire(placement, exclude, cancellation, maxWaitMs) {
      // Waiting for a worker with the model is worth about one job's time (a swap costs more than that on a
      // GPU); past it, or with no room to wait in, a free slot elsewhere is taken.
      const patientPlacement = { ...placement, patient: true };
      const first = claim(queue.length < options.queueMax ? patientPlacement : placement, exclude);
      if (first.kind === 'taken') return first.value;
      if (first.kind === 'fail') throw first.error;
      const queued = performance.now();
      // Ended by its timer, not by comparing clocks: the pump it triggers must see the patience over.
      let patient = true;
      const patience = setTimeout(() => {
        patient = false;
        queue.pump();
      }, meanJobMs);
      // Whether a claim waits depends only on the model, the capabilities and the patience (and on what it
      // excludes: a retry's claims are always asked).
      const likeness = (asPatient: boolean) => (exclude.size > 0 ? undefined : `${asPatient ? 'patient' : 'any'}|${placement.required?.join(',') ?? ''}|${placement.model}`);
      const [patientLikeness, anyLikeness] = [likeness(true), likeness(false)];
      return queue
        .wait(() => claim(patient ? patientPlacement : placement, exclude), cancellation, maxWaitMs, () => (patient ? patientLikeness : anyLikeness))
        .finally(() => {
          clearTimeout(patience);
          options.recorder.workerQueueWait((performance.now() - queued) / 1000);
        });
    },
    retryAfterSeconds() {
      const capacity = Math.max(1, workers.filter((worker) => worker.healthy).reduce((sum, worker) => sum + worker.capacity, 0));
      return Math.max(1, Math.ceil((meanJobMs * (queue.length + 1)) / capacity / 1000));
    },
    get queueLength() {
      return queue.length;
    },
    refreshHealth,
    recheck,
    async close() {
      clearInterval(poller);
      await Promise.all(workers.map((worker) => worker.http.close()));
    },
  };
}

function countUp(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function countDown(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}
