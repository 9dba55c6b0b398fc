import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { DestinationStream } from 'pino';
import { buildApp } from './app.js';
import { createDrain, type Drain } from './api/drain.js';
import type { Config } from './config.js';
import { createDispatchStage, type DispatchStage } from './dispatch/create-dispatch.js';
import type { ModelRecord } from './contracts/model-record.js';
import { createModelResolution, REDIS_NAMESPACE, type ModelResolution } from './models/model-resolution.js';
import { createMemorySessionStore } from './sessions/memory-session-store.js';
import { createRedisSessionStore } from './sessions/redis-session-store.js';
import { createAsyncDelivery, type AsyncDelivery } from './async-delivery.js';
import { createSessionHub, hubTiming, sessionTiming, type SessionHub } from './sessions/session-hub.js';
import { silentMetrics } from './contracts/metrics-recorder.js';
import { createGatewayMetrics } from './metrics/gateway-metrics.js';
import { startTracing } from './tracing.js';

export interface Gateway {
  readonly app: FastifyInstance;
  readonly resolution: ModelResolution;
  readonly dispatch: DispatchStage;
  readonly sessions: SessionHub;
  /** The task ledger, the async queue and its consumer, webhooks. */
  readonly delivery: AsyncDelivery;
  /** The shutdown drain: server.ts begins it on SIGTERM, and closes the app once it has settled. */
  readonly drain: Drain;
  /** Closes the app (in-flight requests finish), then the workers' pools and Redis. */
  close(): Promise<void>;
}

/**
 * The whole gateway from its configuration: the resolution stack (catalogues, registry, caches, Redis), the
 * dispatch stage (workers, image store) and the app over them. server.ts runs it; tests build it the same way.
 */
export async function createGateway(
  config: Config,
  operatorRecords: readonly ModelRecord[],
  logger: Pick<FastifyBaseLogger, 'info' | 'warn'>,
  logStream?: DestinationStream,
): Promise<Gateway> {
  const drain = createDrain();
  // Only with an OTLP endpoint configured: startTracing imports OpenTelemetry then, and not before.
  const tracing = config.tracing ? await startTracing(config.tracing, logger) : undefined;
  const metrics = config.metrics.enabled ? createGatewayMetrics() : undefined;
  const recorder = metrics ?? silentMetrics;
  const resolution = createModelResolution(config, operatorRecords, logger, recorder);
  const dispatch = createDispatchStage(config, logger, recorder, tracing?.dispatch);
  const timing = sessionTiming(config);
  const sessions = createSessionHub({
    store: resolution.redis ? createRedisSessionStore({ redis: resolution.redis, namespace: REDIS_NAMESPACE, timing }) : createMemorySessionStore(timing),
    ...hubTiming(config),
    logger,
  });
  const delivery = await createAsyncDelivery({
    config,
    dispatcher: dispatch.dispatcher,
    logger,
    recorder,
    ...(resolution.redis && config.redis && { redis: { connection: resolution.redis, target: config.redis, namespace: REDIS_NAMESPACE } }),
  });
  const app = await buildApp({
    config,
    resolver: resolution.resolver,
    contentStore: resolution.contentStore,
    dispatcher: dispatch.dispatcher,
    imageStore: dispatch.imageStore,
    sessions,
    drain,
    delivery,
    ...(resolution.redis && { rateLimitRedis: resolution.redis.client }),
    ...(logStream && { logStream }),
    ...(metrics && { metrics }),
    ...(tracing && { tracing }),
  });
  metrics?.readFrom({ resolution: resolution.metrics, ...(dispatch.pool && { pool: dispatch.pool }) });
  app.addHook('onClose', async () => {
    // Async jobs running here finish (or, past the drain, are taken up by another replica) before the workers' pools close.
    await delivery.close();
    await dispatch.close();
    await sessions.close();
    await resolution.close();
    // Last: the spans of all the above are sent before the gateway is gone.
    await tracing?.shutdown();
  });
  return { app, resolution, dispatch, sessions, delivery, drain, close: () => app.close() };
}
