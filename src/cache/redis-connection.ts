import type { FastifyBaseLogger } from 'fastify';
import type { RedisTarget } from '../config.js';
import { createRedisClient, isCluster, type RedisClient } from './redis-clients.js';

/**
 * The shared Redis, treated as optional at every moment: commands fail fast instead of queueing while it
 * is down (the caller falls back to in-process tiers and the sources), it reconnects by itself, and the
 * log says so once per change of state rather than once per failed command.
 */
export interface RedisConnection {
  /** Commands: GET/MGET/SET/PUBLISH/EVAL. On a Cluster, multi-key commands stay in one slot (getMany in redis-clients.ts). */
  readonly client: RedisClient;
  /**
   * A second connection in subscriber mode; Redis allows nothing else on it. On a Cluster this is the command
   * client itself: ioredis keeps its subscriptions on a connection of their own to one node (moved to another,
   * subscriptions and all, when that node goes), and a PUBLISH on any node reaches every node's subscribers.
   */
  readonly subscriber: RedisClient;
  isUp(): boolean;
  /**
   * Reports a failed command. A timeout means Redis is connected but not answering (overloaded, paused):
   * it is then treated as down for a few seconds, so requests stop paying a command timeout each.
   */
  noteFailure(error: unknown): void;
  close(): Promise<void>;
}

/** How long a Redis that timed out is left alone before commands are tried again. */
const SUSPEND_AFTER_TIMEOUT_MS = 5000;

export interface RedisConnectionOptions {
  /** Bound on one command: a hung Redis must not hang requests. */
  readonly commandTimeoutMs?: number;
}

type Logger = Pick<FastifyBaseLogger, 'info' | 'warn'>;

/** `target` is the configured Redis (any mode), or a REDIS_URL. */
export function connectRedis(target: RedisTarget | string, logger: Logger, options: RedisConnectionOptions = {}): RedisConnection {
  const common = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 2000,
    // Reconnect forever, backing off to one try every two seconds.
    retryStrategy: (attempt: number) => Math.min(100 * 2 ** attempt, 2000),
  };
  const client = createRedisClient(target, { ...common, connectionName: 'clipgate', commandTimeout: options.commandTimeoutMs ?? 1000, autoPipelining: true });
  const subscriber = isCluster(client) ? client : createRedisClient(target, { ...common, connectionName: 'clipgate-subscriber' });

  let up = false;
  let announcedDown = false;
  client.on('ready', () => {
    if (!up) logger.info(announcedDown ? 'Redis is back: shared caches are in use again' : 'Redis connected');
    up = true;
    announcedDown = false;
  });
  const markDown = (error?: Error) => {
    if (up || !announcedDown) {
      logger.warn({ err: error?.message }, 'Redis unavailable: serving from in-process caches and the sources until it returns');
      announcedDown = true;
    }
    up = false;
  };
  client.on('error', markDown);
  client.on('close', () => markDown());
  // The subscriber's own errors are the same outage seen twice; state follows the command connection.
  subscriber.on('error', () => undefined);

  let suspendedUntil = 0;
  return {
    client,
    subscriber,
    isUp: () => up && client.status === 'ready' && Date.now() >= suspendedUntil,
    noteFailure(error) {
      if (!(error instanceof Error) || !/timed out/i.test(error.message)) return;
      if (Date.now() >= suspendedUntil) logger.warn('Redis is not answering in time: using in-process caches for a few seconds');
      suspendedUntil = Date.now() + SUSPEND_AFTER_TIMEOUT_MS;
    },
    async close() {
      client.disconnect();
      if (subscriber !== client) subscriber.disconnect();
    },
  };
}
