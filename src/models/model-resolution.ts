import type { FastifyBaseLogger } from 'fastify';
import pLimit, { type LimitFunction } from 'p-limit';
import type { Config } from '../config.js';
import { createCachedResolver } from '../cache/cached-resolver.js';
import { createModelCache } from '../cache/model-cache.js';
import { createPeerLocks } from '../cache/peer-lock.js';
import { connectRedis, type RedisConnection } from '../cache/redis-connection.js';
import { createResolutionMetrics, type ResolutionMetrics } from '../cache/resolution-metrics.js';
import { createContentStore, type ContentStore } from '../embeddings/content-store.js';
import { createCatalogueResolver } from './catalogue.js';
import { createCivitaiRegistry } from './civitai-registry.js';
import type { ModelRecord } from '../contracts/model-record.js';
import { createModelResolver } from './model-resolver.js';
import { createRegistrySource } from './registry-source.js';
import type { ModelResolver } from '../contracts/model-resolver.js';
import { silentMetrics, type MetricsRecorder } from '../contracts/metrics-recorder.js';

/** Keys of every shared Redis entry start with this; bump the version when their shape changes. */
export const REDIS_NAMESPACE = 'clipgate:v1';


export interface ModelResolution {
  readonly resolver: ModelResolver;
  readonly contentStore: ContentStore;
  readonly metrics: ResolutionMetrics;
  readonly redis: RedisConnection | undefined;
  close(): Promise<void>;
}

/** Builds the whole resolution stack from configuration: catalogue, registry, caches, Redis, file store. */
export function createModelResolution(
  config: Config,
  operatorRecords: readonly ModelRecord[],
  logger: Pick<FastifyBaseLogger, 'info' | 'warn'>,
  recorder: MetricsRecorder = silentMetrics,
): ModelResolution {
  const metrics = createResolutionMetrics();
  const redis = config.redis ? connectRedis(config.redis, logger) : undefined;
  const clock = Date.now;
  const contentStore = createContentStore({
    namespace: REDIS_NAMESPACE,
    redis,
    maxLocalBytes: 256 * 1024 * 1024,
    // Longer than any record that points at a file can be served, fresh or stale.
    sharedTtlSeconds: config.modelCache.ttlSeconds + config.modelCache.staleSeconds + 86_400,
  });
  const catalogue = createCatalogueResolver(operatorRecords);
  const locks = redis ? createPeerLocks(redis, { namespace: REDIS_NAMESPACE, lockTtlMs: 30_000, recheckMs: 1000 }) : undefined;

  let registryResolver: ModelResolver | undefined;
  if (config.registry) {
    const registry = createCivitaiRegistry({
      baseUrl: config.registry.baseUrl,
      token: config.registry.token,
      timeoutMs: config.registry.timeoutMs,
      maxAttempts: 3,
    });
    const fetchFromRegistry = createRegistrySource({
      registry,
      logger,
      metrics,
      recorder,
      clock,
      ingest: {
        store: contentStore,
        maxBytes: config.embeddingMaxBytes,
        timeoutMs: config.registry.timeoutMs * 3,
        credentials: config.registry.token ? { origin: new URL(config.registry.baseUrl).origin, token: config.registry.token } : undefined,
      },
    });
    // However many cold AIRs arrive at once, the registry sees a few requests at a time from this replica, and
    // one API key only its share of them: another client's first lookup does not queue behind a flood.
    const limit = pLimit(config.registryLimits.concurrency);
    const perKey = new Map<string, LimitFunction>();
    const forKey = (principal: string) => {
      let keyLimit = perKey.get(principal);
      if (!keyLimit) perKey.set(principal, (keyLimit = pLimit(config.registryLimits.concurrencyPerKey)));
      return keyLimit;
    };
    registryResolver = createCachedResolver({
      source: (air, principal) => {
        if (principal === undefined) return limit(() => fetchFromRegistry(air));
        const keyLimit = forKey(principal);
        return keyLimit(() => limit(() => fetchFromRegistry(air))).finally(() => {
          // Idle limiters are dropped: the map holds the keys that are looking something up now.
          if (keyLimit.activeCount === 0 && keyLimit.pendingCount === 0) perKey.delete(principal);
        });
      },
      lookupDeadlineMs: config.registryLimits.lookupDeadlineMs,
      cache: createModelCache({ namespace: REDIS_NAMESPACE, redis, maxLocalEntries: 10_000, clock, metrics }),
      locks,
      times: {
        ttlMs: config.modelCache.ttlSeconds * 1000,
        staleMs: config.modelCache.staleSeconds * 1000,
        negativeTtlMs: config.modelCache.negativeTtlSeconds * 1000,
        unavailableTtlMs: 5000,
      },
      // A registry lookup plus a download, each with retries, can take this long before we stop waiting.
      peerWaitMs: config.registry.timeoutMs * 4,
      metrics,
      clock,
      logger,
    });
  }

  return {
    resolver: createModelResolver(catalogue, registryResolver),
    contentStore,
    metrics,
    redis,
    async close() {
      await locks?.close();
      await redis?.close();
    },
  };
}
