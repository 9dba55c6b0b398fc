import { createHash } from 'node:crypto';
import type { RedisConnection } from '../cache/redis-connection.js';
import { LedgerUnavailableError, type LedgerEntry, type TaskLedger } from '../contracts/task-ledger.js';
import { decodeEntry, encodeEntry } from './ledger-codec.js';

/**
 * The ledger in Redis: one string per task, `{namespace}ledger:{principal hash}:{taskUUID}`, written whole
 * with its TTL (SET … EX), so a record is never half-written and expires by itself. The principal is hashed:
 * key names must not carry an API key's identity in clear. A write that fails is logged and dropped: the
 * task's answer on its own request is never held up by the ledger.
 */
export function createRedisTaskLedger(options: {
  redis: RedisConnection;
  namespace: string;
  ttlSeconds: number;
  logger: { warn(object: object, message: string): void };
  clock?: () => number;
}): TaskLedger {
  const { redis, namespace, ttlSeconds, logger } = options;
  const clock = options.clock ?? Date.now;
  const keyOf = (principal: string, taskUUID: string) => `${namespace}ledger:${createHash('sha256').update(principal).digest('hex').slice(0, 32)}:${taskUUID}`;
  const write = (principal: string, entry: LedgerEntry) =>
    redis.client.set(keyOf(principal, entry.taskUUID), encodeEntry(entry), 'EX', ttlSeconds).then(
      () => undefined,
      (error: unknown) => {
        redis.noteFailure(error);
        logger.warn({ err: error, taskUUID: entry.taskUUID }, 'task ledger write failed');
      },
    );
  return {
    ttlSeconds,
    started(principal, taskUUID, taskType) {
      void write(principal, { taskUUID, taskType, state: 'processing', results: [], errors: [], updatedAt: clock() });
    },
    async finished(principal, entry) {
      await write(principal, { ...entry, updatedAt: clock() });
    },
    async get(principal, taskUUID) {
      try {
        return decodeEntry(await redis.client.get(keyOf(principal, taskUUID)));
      } catch (error) {
        redis.noteFailure(error);
        throw new LedgerUnavailableError(error instanceof Error ? error.message : String(error));
      }
    },
  };
}
