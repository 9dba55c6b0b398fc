import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisTarget } from '../config.js';

/**
 * Every ioredis client of clipgate is built here, from the one Redis mode configured (REDIS_URL,
 * REDIS_CLUSTER_NODES or REDIS_SENTINELS): the gateway's command and subscriber connections, and BullMQ's.
 * A Cluster and a Redis share their command methods, pub/sub and scripts (defineCommand); what differs is
 * that commands of one call (MGET, a pipeline, a script's keys) must stay in one hash slot on a Cluster —
 * see `getMany` below and docs/decisions.md ("Redis Cluster and Sentinel").
 */
export type RedisClient = Redis | Cluster;

/** What a caller chooses for its connection; addresses, credentials and TLS come from the target. */
export interface RedisClientOptions {
  readonly connectionName: string;
  readonly connectTimeout?: number;
  /** Bound on one command (on each node of a cluster). */
  readonly commandTimeout?: number;
  /** null: retried until Redis answers (BullMQ's workers want that). */
  readonly maxRetriesPerRequest?: number | null;
  /** false: a command while disconnected fails at once instead of waiting. */
  readonly enableOfflineQueue?: boolean;
  /**
   * Commands issued in one tick of the event loop go out in one write (ioredis' auto-pipelining; per node on a
   * cluster): many tasks' ledger scripts share a round trip and a syscall.
   */
  readonly autoPipelining?: boolean;
  /** Delay before reconnect attempt `attempt` (for a cluster: after every node was lost). */
  readonly retryStrategy?: (attempt: number) => number | null;
}

/** A string is a REDIS_URL (tests, tools). */
export function createRedisClient(target: RedisTarget | string, options: RedisClientOptions): RedisClient {
  const resolved: RedisTarget = typeof target === 'string' ? { mode: 'single', url: target, password: undefined } : target;
  const connection: RedisOptions = {
    connectionName: options.connectionName,
    ...(options.connectTimeout !== undefined && { connectTimeout: options.connectTimeout }),
    ...(options.commandTimeout !== undefined && { commandTimeout: options.commandTimeout }),
    ...(options.maxRetriesPerRequest !== undefined && { maxRetriesPerRequest: options.maxRetriesPerRequest }),
  };
  const behaviour: RedisOptions = {
    ...(options.autoPipelining !== undefined && { enableAutoPipelining: options.autoPipelining }),
    ...(options.enableOfflineQueue !== undefined && { enableOfflineQueue: options.enableOfflineQueue }),
    ...(options.retryStrategy && { retryStrategy: options.retryStrategy }),
  };
  switch (resolved.mode) {
    case 'single':
      // A password in the URL wins (ioredis reads the URL first).
      return new Redis(resolved.url, { ...connection, ...behaviour, ...(resolved.password !== undefined && { password: resolved.password }) });
    case 'sentinel':
      return new Redis({
        ...connection,
        ...behaviour,
        sentinels: resolved.sentinels.map(({ host, port }) => ({ host, port })),
        name: resolved.name,
        ...(resolved.password !== undefined && { password: resolved.password }),
        ...(resolved.sentinelPassword !== undefined && { sentinelPassword: resolved.sentinelPassword }),
      });
    case 'cluster': {
      const clusterOptions: ClusterOptions = {
        // Per-node connections: timeouts, retries and credentials of every node.
        redisOptions: {
          ...connection,
          ...(resolved.username !== undefined && { username: resolved.username }),
          ...(resolved.password !== undefined && { password: resolved.password }),
          ...(resolved.tls && { tls: {} }),
        },
        ...(options.autoPipelining !== undefined && { enableAutoPipelining: options.autoPipelining }),
        ...(options.enableOfflineQueue !== undefined && { enableOfflineQueue: options.enableOfflineQueue }),
        ...(options.retryStrategy && { clusterRetryStrategy: options.retryStrategy }),
        // The slot map is fetched within the connect timeout too, so a dead seed node is skipped quickly.
        ...(options.connectTimeout !== undefined && { slotsRefreshTimeout: options.connectTimeout }),
        // With TLS, nodes are reached by the names they announce, so certificates match them (ElastiCache, Memorystore).
        ...(resolved.tls && { dnsLookup: (address: string, callback: (error: Error | null, address: string) => void) => callback(null, address) }),
      };
      return new Cluster(
        resolved.nodes.map(({ host, port }) => ({ host, port })),
        clusterOptions,
      );
    }
  }
}

/**
 * GET of many keys in one round trip. One Redis: MGET. A Cluster refuses an MGET whose keys lie in several
 * slots (CROSSSLOT), and clipgate's cache keys are spread over the slots on purpose, so there every key is
 * a GET of its own, all sent at once: ioredis writes each to its node without waiting for the others, so
 * the wait is still about one round trip (to the slowest node).
 */
export async function getMany(client: RedisClient, keys: readonly string[]): Promise<(string | null)[]> {
  if (keys.length === 0) return [];
  if (isCluster(client)) return Promise.all(keys.map((key) => client.get(key)));
  return client.mget([...keys]);
}

export function isCluster(client: RedisClient): client is Cluster {
  return client.isCluster;
}
