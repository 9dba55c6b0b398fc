import { principalTag } from '../contracts/principal.js';
import type { RedisClient } from '../cache/redis-clients.js';
import type { RedisConnection } from '../cache/redis-connection.js';
import { isClaimable, LedgerUnavailableError, type StoredTaskEvent, type TaskEvent, type TaskLedger, type WebhookAttemptRecord } from '../contracts/task-ledger.js';
import { decodeEntry, encodeEntry } from './ledger-codec.js';

/**
 * The ledger in Redis: one string per task, `{namespace}ledger:{<principal hash>:<taskUUID>}`, written whole
 * with its TTL, so a record is never half-written and expires by itself; beside it (same hash tag, so one
 * cluster slot) a stream of the task's events and a list of its webhook attempts. The principal is hashed:
 * key names must not carry an API key's identity in clear. Claim and the final write are Lua scripts, so
 * "is it taken?" and "take it" are one step on every replica.
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
  const client = redis.client as ScriptedRedis;
  client.defineCommand('ledgerClaim', { numberOfKeys: 2, lua: CLAIM });
  client.defineCommand('ledgerFinish', { numberOfKeys: 1, lua: FINISH });
  client.defineCommand('ledgerEvent', { numberOfKeys: 1, lua: EVENT });
  const keyOf = (principal: string, taskUUID: string) => `${namespace}:ledger:{${principalTag(principal)}:${taskUUID}}`;
  const unavailable = (error: unknown): never => {
    redis.noteFailure(error);
    throw new LedgerUnavailableError(error instanceof Error ? error.message : String(error));
  };
  return {
    ttlSeconds,
    async claim(principal, request) {
      const key = keyOf(principal, request.taskUUID);
      const { abandonedBefore, ...claimed } = request;
      const record = encodeEntry({ ...claimed, state: 'processing', results: [], errors: [], updatedAt: clock() });
      // A sync task (no events of its own) claims with one native SET NX GET, not a script: on every sync task's
      // path, and the taskUUID is almost always new. A record found that may be taken over goes to the script,
      // which checks it again and takes it in one step.
      if (request.deliveryMethod === 'sync') {
        const current = await client.set(key, record, 'EX', ttlSeconds, 'NX', 'GET').catch(unavailable);
        if (current === null) return { kind: 'claimed' };
        const found = decodeEntry(current);
        if (found && !isClaimable(found, abandonedBefore)) return { kind: 'taken', entry: found };
      }
      const existing = await client.ledgerClaim(key, `${key}:events`, record, ttlSeconds, abandonedBefore ?? 0).catch(unavailable);
      const entry = decodeEntry(existing);
      return entry ? { kind: 'taken', entry } : { kind: 'claimed' };
    },
    async finished(principal, entry) {
      const written = { ...entry, updatedAt: clock() };
      const existing = await client.ledgerFinish(keyOf(principal, entry.taskUUID), encodeEntry(written), ttlSeconds).catch(unavailable);
      return decodeEntry(existing) ?? written;
    },
    async get(principal, taskUUID) {
      return decodeEntry(await client.get(keyOf(principal, taskUUID)).catch(unavailable));
    },
    addEvent(principal, taskUUID, event) {
      const key = `${keyOf(principal, taskUUID)}:events`;
      client.ledgerEvent(key, JSON.stringify(event), ttlSeconds).catch((error: unknown) => {
        redis.noteFailure(error);
        logger.warn({ err: error, taskUUID }, 'task event write failed');
      });
    },
    async events(principal, taskUUID, afterId) {
      const key = `${keyOf(principal, taskUUID)}:events`;
      const start = afterId !== undefined && STREAM_ID.test(afterId) ? `(${afterId}` : '-';
      const entries = await client.xrange(key, start, '+', 'COUNT', 1000).catch(unavailable);
      const stored: StoredTaskEvent[] = [];
      for (const [id, fields] of entries) {
        const event = parseEvent(fields[1]);
        if (event) stored.push({ id, event });
      }
      return stored;
    },
    async addWebhookAttempt(principal, taskUUID, attempt) {
      const key = `${keyOf(principal, taskUUID)}:webhooks`;
      await client.multi().rpush(key, JSON.stringify(attempt)).ltrim(key, -1000, -1).expire(key, ttlSeconds).exec().catch(unavailable);
    },
    async webhookAttempts(principal, taskUUID) {
      const items = await client.lrange(`${keyOf(principal, taskUUID)}:webhooks`, 0, -1).catch(unavailable);
      return items.map((item) => JSON.parse(item) as WebhookAttemptRecord);
    },
  };
}

const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

function parseEvent(text: string | undefined): TaskEvent | undefined {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as TaskEvent;
  } catch {
    return undefined;
  }
}

// KEYS[1] record, KEYS[2] its event stream; ARGV[1] the processing record, ARGV[2] TTL, ARGV[3] epoch ms before
// which a sync task's processing record was abandoned (0: none). A task that ended in error, or such an
// abandoned one, may be claimed again (its events start over); any other record is returned as it is.
// (Mirrors isClaimable in src/contracts/task-ledger.ts.)
const CLAIM = `
local current = redis.call('GET', KEYS[1])
if current then
  local entry = cjson.decode(current)
  local abandoned = entry.state == 'processing' and entry.deliveryMethod == 'sync' and tonumber(ARGV[3]) > 0 and entry.updatedAt < tonumber(ARGV[3])
  if entry.state ~= 'error' and not abandoned then return current end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('DEL', KEYS[2])
return false`;

// KEYS[1] record; ARGV[1] the final record, ARGV[2] TTL. A record that is final already stays.
const FINISH = `
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current).state ~= 'processing' then return current end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false`;

// KEYS[1] the event stream; ARGV[1] the event, ARGV[2] TTL. A script rather than MULTI: an async task writes one
// per progress step, and ioredis builds a pipeline and four commands for a MULTI of two.
const EVENT = `
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', '1000', '*', 'e', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return id`;

type ScriptedRedis = RedisClient & {
  ledgerClaim(record: string, events: string, value: string, ttlSeconds: number, abandonedBefore: number): Promise<string | null>;
  ledgerFinish(record: string, value: string, ttlSeconds: number): Promise<string | null>;
  ledgerEvent(events: string, event: string, ttlSeconds: number): Promise<string>;
};
