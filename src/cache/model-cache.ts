import { LRUCache } from 'lru-cache';
import { decodeEntry, encodeEntry, freshnessOf, type CacheEntry } from './cache-entry.js';
import { getMany } from './redis-clients.js';
import type { RedisConnection } from './redis-connection.js';
import type { ResolutionMetrics } from './resolution-metrics.js';

/**
 * The two cache tiers of resolved models: L1, an in-process LRU, and L2, Redis shared by every replica.
 * Reads of many keys cost one Redis round trip (MGET) for whatever L1 lacks; Redis failures are misses,
 * never errors, so an outage only makes the gateway slower. The keys carry no hash tag: on a Redis Cluster
 * they spread over every master (one slot for all would put the whole cache, and every request's reads, on
 * one node), and the MGET becomes one GET per key, sent together (getMany).
 */
export interface ModelCache {
  /** Unexpired entries for the keys that have one: L1 first, then one MGET (one GET each on a Cluster) for the rest. */
  getMany(keys: readonly string[]): Promise<Map<string, CacheEntry>>;
  /** L1 alone, synchronously: the unexpired entry of every key, or undefined as soon as one has none. Counts nothing. */
  peekLocal(keys: readonly string[]): CacheEntry[] | undefined;
  /** L2 alone, for waiters who know another replica just wrote the key. */
  readShared(key: string): Promise<CacheEntry | undefined>;
  rememberLocally(key: string, entry: CacheEntry): void;
  /** Writes L1, then L2; true when the shared copy was written. */
  store(key: string, entry: CacheEntry): Promise<boolean>;
}

export interface ModelCacheOptions {
  readonly namespace: string;
  readonly redis: RedisConnection | undefined;
  readonly maxLocalEntries: number;
  readonly clock: () => number;
  readonly metrics: ResolutionMetrics;
}

export function createModelCache(options: ModelCacheOptions): ModelCache {
  const { redis, clock, metrics } = options;
  const local = new LRUCache<string, CacheEntry>({ max: options.maxLocalEntries });
  const redisKey = (key: string) => `${options.namespace}:model:${key}`;
  const usable = (entry: CacheEntry | undefined) => (entry && freshnessOf(entry, clock()) !== 'expired' ? entry : undefined);

  function rememberLocally(key: string, entry: CacheEntry): void {
    const ttl = entry.staleUntil - clock();
    if (ttl > 0) local.set(key, entry, { ttl });
  }

  return {
    async getMany(keys) {
      const found = new Map<string, CacheEntry>();
      const missing: string[] = [];
      for (const key of keys) {
        const entry = usable(local.get(key));
        if (entry) {
          found.set(key, entry);
          metrics.l1Hits++;
        } else missing.push(key);
      }
      if (missing.length === 0 || !redis?.isUp()) return found;
      try {
        const texts = await getMany(redis.client, missing.map(redisKey));
        missing.forEach((key, index) => {
          const entry = usable(decodeEntry(texts[index]));
          if (!entry) return;
          found.set(key, entry);
          rememberLocally(key, entry);
          metrics.l2Hits++;
        });
      } catch (error) {
        metrics.redisErrors++;
        redis.noteFailure(error);
      }
      return found;
    },

    peekLocal(keys) {
      const entries: CacheEntry[] = [];
      for (const key of keys) {
        const entry = usable(local.get(key));
        if (!entry) return undefined;
        entries.push(entry);
      }
      return entries;
    },

    async readShared(key) {
      if (!redis?.isUp()) return undefined;
      try {
        return usable(decodeEntry(await redis.client.get(redisKey(key))));
      } catch (error) {
        metrics.redisErrors++;
        redis.noteFailure(error);
        return undefined;
      }
    },

    rememberLocally,

    async store(key, entry) {
      rememberLocally(key, entry);
      const ttl = entry.staleUntil - clock();
      if (!redis?.isUp() || ttl <= 0) return false;
      try {
        await redis.client.set(redisKey(key), encodeEntry(entry), 'PX', ttl);
        return true;
      } catch (error) {
        metrics.redisErrors++;
        redis.noteFailure(error);
        return false;
      }
    },
  };
}
