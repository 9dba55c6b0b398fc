import { LRUCache } from 'lru-cache';
import type { RedisConnection } from '../cache/redis-connection.js';

/**
 * Canonical embedding files, addressed by their SHA-256. Kept in-process (an LRU bounded in bytes) and,
 * with Redis configured, in Redis too, so any replica can serve a file another replica ingested.
 */
export interface ContentStore {
  put(sha256: string, bytes: Uint8Array): Promise<void>;
  get(sha256: string): Promise<Uint8Array | undefined>;
}

export interface ContentStoreOptions {
  readonly namespace: string;
  readonly redis: RedisConnection | undefined;
  readonly maxLocalBytes: number;
  /** How long Redis keeps a file; longer than records are served stale, so a cached record's file exists. */
  readonly sharedTtlSeconds: number;
}

export function createContentStore(options: ContentStoreOptions): ContentStore {
  const local = new LRUCache<string, Uint8Array>({
    maxSize: options.maxLocalBytes,
    sizeCalculation: (bytes) => Math.max(1, bytes.byteLength),
  });
  const redisKey = (sha256: string) => `${options.namespace}:file:${sha256}`;
  const { redis } = options;

  return {
    async put(sha256, bytes) {
      local.set(sha256, bytes);
      if (!redis?.isUp()) return;
      await redis.client.set(redisKey(sha256), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), 'EX', options.sharedTtlSeconds).catch((error: unknown) => redis.noteFailure(error));
    },

    async get(sha256) {
      const held = local.get(sha256);
      if (held) return held;
      if (!redis?.isUp()) return undefined;
      const bytes = await redis.client.getBuffer(redisKey(sha256)).catch((error: unknown) => {
        redis.noteFailure(error);
        return null;
      });
      if (!bytes) return undefined;
      const copy = new Uint8Array(bytes);
      local.set(sha256, copy);
      return copy;
    },
  };
}
