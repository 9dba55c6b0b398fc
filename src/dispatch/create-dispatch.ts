import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config.js';
import type { Dispatcher } from '../contracts/dispatcher.js';
import { silentMetrics, type MetricsRecorder } from '../contracts/metrics-recorder.js';
import type { DispatchTracer } from '../contracts/dispatch-tracing.js';
import { createDirectoryImageStore, type ImageStore } from './image-store.js';
import { createNoWorkerDispatcher } from './no-worker-dispatcher.js';
import { createPoolDispatcher } from './pool-dispatcher.js';
import { createWorkerPool, type WorkerPool } from './worker-pool.js';

export interface DispatchStage {
  readonly dispatcher: Dispatcher;
  readonly imageStore: ImageStore;
  readonly pool: WorkerPool | undefined;
  close(): Promise<void>;
}

/** Builds the dispatch stage from configuration: the worker pool when WORKER_URLS names any workers. */
export function createDispatchStage(config: Config, logger: Pick<FastifyBaseLogger, 'info' | 'warn'>, recorder: MetricsRecorder = silentMetrics, tracer?: DispatchTracer): DispatchStage {
  const imageStore = createDirectoryImageStore(config.imageStoreDir);
  // Images of outputType URL are fetched soon after the answer or never; old ones are swept away.
  const ttlMs = config.imageTtlSeconds * 1000;
  const sweeper = setInterval(() => {
    imageStore.sweep(ttlMs).catch((error: unknown) => logger.warn({ err: error }, 'image sweep failed'));
  }, Math.min(ttlMs, 3_600_000));
  sweeper.unref();
  const stopSweeping = async () => clearInterval(sweeper);
  if (config.dispatch.workerUrls.length === 0) {
    return { dispatcher: createNoWorkerDispatcher(), imageStore, pool: undefined, close: stopSweeping };
  }
  const pool = createWorkerPool({
    urls: config.dispatch.workerUrls,
    healthIntervalMs: config.dispatch.healthIntervalMs,
    healthTimeoutMs: Math.min(2000, config.dispatch.healthIntervalMs),
    queueMax: config.dispatch.queueMax,
    breaker: { failureThreshold: config.dispatch.breakerFailureThreshold, cooldownMs: config.dispatch.breakerCooldownMs },
    clock: Date.now,
    random: Math.random,
    logger,
    recorder,
  });
  const dispatcher = createPoolDispatcher({
    pool,
    output: { store: imageStore, publicBaseUrl: config.publicBaseUrl, costPerMegapixelStep: config.costPerMegapixelStep },
    taskTimeoutMs: config.dispatch.taskTimeoutMs,
    firstByteTimeoutMs: config.dispatch.firstByteTimeoutMs,
    progressTimeoutMs: config.dispatch.progressTimeoutMs,
    queueWaitMs: config.dispatch.queueWaitMs,
    maxAttempts: config.dispatch.maxAttempts,
    publicBaseUrl: config.publicBaseUrl,
    random: Math.random,
    ...(tracer && { tracer }),
  });
  return {
    dispatcher,
    imageStore,
    pool,
    async close() {
      await stopSweeping();
      await pool.close();
    },
  };
}
