import { randomUUID } from 'node:crypto';
import type { ChainableCommander } from 'ioredis';
import { isCluster, type RedisClient } from '../cache/redis-clients.js';
import type { RedisConnection } from '../cache/redis-connection.js';
import { createMemorySessionStore } from './memory-session-store.js';
import type { SessionEvent, SessionStore, SessionTiming, TaskClaim } from './session-store.js';

/**
 * The session store shared by every replica through Redis (7 or newer). All keys of one principal carry its
 * id as a hash tag, so the scripts below touch a single slot in a Redis Cluster too. A session's record
 * names the socket that holds it (a token per attach), so a replica that lost a socket to a resume elsewhere
 * cannot detach or renew it. Each replica is told through a channel per session when answers are held for
 * it, or when another socket resumed it.
 *
 * While Redis is down, the store of this replica alone takes over (a resume then works only here), and the
 * shared one is used again once Redis is back.
 */

export interface RedisSessionStoreOptions {
  readonly redis: RedisConnection;
  readonly namespace: string;
  readonly timing: SessionTiming;
}

// KEYS: session. ARGV: holder token, liveMs, channel. Takes the session for a new socket, telling the old one.
const RESUME = `
local holder = redis.call('HGET', KEYS[1], 'holder')
if not holder then return 0 end
redis.call('HSET', KEYS[1], 'holder', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if holder ~= '' then redis.call('PUBLISH', ARGV[3], '{"kind":"taken"}') end
return 1`;

// KEYS: session. ARGV: holder token, ttlMs, empty-holder flag. Renews (or, when detaching, releases) only what this socket holds.
const RENEW = `
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then return 0 end
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'holder', '') end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

// KEYS: task, session tasks, held. ARGV: session id, liveMs, session key prefix, taskUUID, session tasks ttlMs.
// A finished task with nothing held is claimed anew: all it gave was delivered, and it is asked for again.
const CLAIM = `
local owner = redis.call('HGET', KEYS[1], 'owner')
local result = 'new'
if owner and redis.call('HGET', KEYS[1], 'running') == '0' and redis.call('LLEN', KEYS[3]) == 0 then owner = false end
if not owner then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'running', '1')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif owner == ARGV[1] then
  return 'owned'
else
  local holder = redis.call('HGET', ARGV[3] .. owner, 'holder')
  if holder and holder ~= '' then return 'busy' end
  redis.call('HSET', KEYS[1], 'owner', ARGV[1])
  result = 'moved'
end
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return result`;

// KEYS: task, held. ARGV: frame, ttlMs, channel prefix, event.
const HOLD = `
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3] .. owner, ARGV[4])
return 1`;

// KEYS: task, held. ARGV: session id.
const TAKE = `
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {} end
local frames = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
return frames`;

// KEYS: task, held. ARGV: windowMs. The task gave all its answers: its record, and what is held, kept for the
// window. A script rather than MULTI: one command on every WebSocket task's path (ioredis builds a pipeline, its
// promises and five commands for a MULTI of three).
const FINISH = `
redis.call('HSET', KEYS[1], 'running', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1`;

type ScriptedRedis = RedisClient & {
  sessionResume(session: string, token: string, liveMs: number, channel: string): Promise<number>;
  sessionRenew(session: string, token: string, ttlMs: number, release: string): Promise<number>;
  sessionClaim(task: string, sessionTasks: string, held: string, sessionId: string, liveMs: number, sessionPrefix: string, taskUUID: string, ttlMs: number): Promise<TaskClaim>;
  sessionHold(task: string, held: string, frame: string, ttlMs: number, channelPrefix: string, event: string): Promise<number>;
  sessionTake(task: string, held: string, sessionId: string): Promise<string[]>;
  sessionFinish(task: string, held: string, windowMs: number): Promise<number>;
};

export function createRedisSessionStore(options: RedisSessionStoreOptions): SessionStore {
  const { redis, timing } = options;
  const local = createMemorySessionStore(timing);
  const client = redis.client as ScriptedRedis;
  client.defineCommand('sessionResume', { numberOfKeys: 1, lua: RESUME });
  client.defineCommand('sessionRenew', { numberOfKeys: 1, lua: RENEW });
  client.defineCommand('sessionClaim', { numberOfKeys: 3, lua: CLAIM });
  client.defineCommand('sessionHold', { numberOfKeys: 2, lua: HOLD });
  client.defineCommand('sessionTake', { numberOfKeys: 2, lua: TAKE });
  client.defineCommand('sessionFinish', { numberOfKeys: 2, lua: FINISH });

  const base = (principal: string) => `${options.namespace}:ws:{${principal}}`;
  const sessionKey = (principal: string, sessionId: string) => `${base(principal)}:session:${sessionId}`;
  const sessionTasksKey = (principal: string, sessionId: string) => `${base(principal)}:session-tasks:${sessionId}`;
  const taskKey = (principal: string, taskUUID: string) => `${base(principal)}:task:${taskUUID}`;
  const heldKey = (principal: string, taskUUID: string) => `${base(principal)}:held:${taskUUID}`;
  const channelPrefix = `${options.namespace}:ws:session:`;
  /** The holder token of each session a socket of this replica holds. */
  const tokens = new Map<string, string>();
  const sessionTtlMs = timing.windowMs + timing.liveMs;

  /** Redis when it is up and answers; this replica's own store otherwise. */
  async function shared<T>(operation: () => Promise<T>, fallback: () => Promise<T>): Promise<T> {
    if (!redis.isUp()) return fallback();
    try {
      return await operation();
    } catch (error) {
      redis.noteFailure(error);
      return fallback();
    }
  }

  const listeners = new Map<string, Set<(event: SessionEvent) => void>>();
  const onMessage = (channel: string, message: string) => {
    if (!channel.startsWith(channelPrefix)) return;
    const set = listeners.get(channel.slice(channelPrefix.length));
    if (!set) return;
    let event: SessionEvent;
    try {
      event = JSON.parse(message) as SessionEvent;
    } catch {
      return;
    }
    for (const listener of set) listener(event);
  };
  redis.subscriber.on('message', onMessage);
  // (Re)subscribe whenever the subscriber connection becomes ready: Redis may have restarted.
  const resubscribe = () => {
    const channels = [...listeners.keys()].map((sessionId) => channelPrefix + sessionId);
    if (channels.length > 0) redis.subscriber.subscribe(...channels).catch(() => undefined);
  };
  redis.subscriber.on('ready', resubscribe);

  return {
    open(principal) {
      return shared(
        async () => {
          const sessionId = randomUUID();
          const token = randomUUID();
          await client.multi().hset(sessionKey(principal, sessionId), 'holder', token).pexpire(sessionKey(principal, sessionId), timing.liveMs).exec();
          tokens.set(sessionId, token);
          return sessionId;
        },
        () => local.open(principal),
      );
    },
    resume(sessionId, principal) {
      return shared(
        async () => {
          const token = randomUUID();
          const resumed = (await client.sessionResume(sessionKey(principal, sessionId), token, timing.liveMs, channelPrefix + sessionId)) === 1;
          if (resumed) tokens.set(sessionId, token);
          // A session opened while Redis was down lives in this replica's store.
          return resumed || local.resume(sessionId, principal);
        },
        () => local.resume(sessionId, principal),
      );
    },
    async detach(sessionId, principal) {
      const token = tokens.get(sessionId);
      tokens.delete(sessionId);
      await local.detach(sessionId, principal);
      if (token === undefined) return;
      await shared(
        async () => {
          await client.sessionRenew(sessionKey(principal, sessionId), token, sessionTtlMs, '1');
        },
        async () => undefined,
      );
    },
    isAttached(sessionId, principal) {
      return shared(
        async () => {
          const holder = await client.hget(sessionKey(principal, sessionId), 'holder');
          return (holder !== null && holder !== '') || local.isAttached(sessionId, principal);
        },
        () => local.isAttached(sessionId, principal),
      );
    },
    claimTask(principal, taskUUID, sessionId) {
      return shared(
        () =>
          client.sessionClaim(
            taskKey(principal, taskUUID),
            sessionTasksKey(principal, sessionId),
            heldKey(principal, taskUUID),
            sessionId,
            timing.liveMs,
            `${base(principal)}:session:`,
            taskUUID,
            sessionTtlMs,
          ),
        () => local.claimTask(principal, taskUUID, sessionId),
      );
    },
    async finishTask(principal, taskUUID) {
      await local.finishTask(principal, taskUUID);
      await shared(
        async () => {
          await client.sessionFinish(taskKey(principal, taskUUID), heldKey(principal, taskUUID), timing.windowMs);
        },
        async () => undefined,
      );
    },
    ownerOf(principal, taskUUID) {
      return shared(
        async () => (await client.hget(taskKey(principal, taskUUID), 'owner')) ?? (await local.ownerOf(principal, taskUUID)),
        () => local.ownerOf(principal, taskUUID),
      );
    },
    hold(principal, taskUUID, frame) {
      const event = JSON.stringify({ kind: 'held', taskUUID });
      return shared(
        async () => {
          const held = await client.sessionHold(taskKey(principal, taskUUID), heldKey(principal, taskUUID), frame, sessionTtlMs, channelPrefix, event);
          // A task claimed while Redis was down is known only here.
          if (held === 0) await local.hold(principal, taskUUID, frame);
        },
        () => local.hold(principal, taskUUID, frame),
      );
    },
    take(principal, taskUUID, sessionId) {
      return shared(
        async () => [...(await client.sessionTake(taskKey(principal, taskUUID), heldKey(principal, taskUUID), sessionId)), ...(await local.take(principal, taskUUID, sessionId))],
        () => local.take(principal, taskUUID, sessionId),
      );
    },
    tasksOf(sessionId, principal) {
      return shared(
        async () => [...new Set([...(await client.smembers(sessionTasksKey(principal, sessionId))), ...(await local.tasksOf(sessionId, principal))])],
        () => local.tasksOf(sessionId, principal),
      );
    },
    async heartbeat(sessions, tasks) {
      await local.heartbeat(sessions, tasks);
      if (sessions.length === 0 && tasks.length === 0) return;
      await shared(
        async () => {
          // One pipeline, one round trip. On a Redis Cluster a pipeline must stay in one slot, so there it is one
          // per principal (its keys share its hash tag), all sent at once.
          const pipelines = new Map<string, ChainableCommander>();
          const pipelineOf = (principal: string) => {
            const group = isCluster(client) ? principal : '';
            let pipeline = pipelines.get(group);
            if (!pipeline) pipelines.set(group, (pipeline = client.pipeline()));
            return pipeline;
          };
          for (const { sessionId, principal } of sessions) {
            const token = tokens.get(sessionId);
            if (token === undefined) continue;
            const pipeline = pipelineOf(principal);
            (pipeline as unknown as ScriptedRedis).sessionRenew(sessionKey(principal, sessionId), token, timing.liveMs, '0');
            pipeline.pexpire(sessionTasksKey(principal, sessionId), sessionTtlMs);
          }
          // GT: a heartbeat never shortens the window of a task that just finished.
          for (const { principal, taskUUID } of tasks) pipelineOf(principal).pexpire(taskKey(principal, taskUUID), timing.liveMs, 'GT');
          await Promise.all([...pipelines.values()].map((pipeline) => pipeline.exec()));
        },
        async () => undefined,
      );
    },
    subscribe(sessionId, listener) {
      const unsubscribeLocal = local.subscribe(sessionId, listener);
      let set = listeners.get(sessionId);
      if (!set) {
        listeners.set(sessionId, (set = new Set()));
        redis.subscriber.subscribe(channelPrefix + sessionId).catch(() => undefined);
      }
      set.add(listener);
      return () => {
        unsubscribeLocal();
        set.delete(listener);
        if (set.size === 0 && listeners.get(sessionId) === set) {
          listeners.delete(sessionId);
          redis.subscriber.unsubscribe(channelPrefix + sessionId).catch(() => undefined);
        }
      };
    },
    async close() {
      redis.subscriber.off('message', onMessage);
      redis.subscriber.off('ready', resubscribe);
      listeners.clear();
      await local.close();
    },
  };
}
