import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, type RedisConnection } from '../../src/cache/redis-connection.js';
import { createMemorySessionStore } from '../../src/sessions/memory-session-store.js';
import { createRedisSessionStore } from '../../src/sessions/redis-session-store.js';
import type { SessionEvent, SessionStore, SessionTiming } from '../../src/sessions/session-store.js';
import { until } from '../support/gateway.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';

/**
 * The same rules for both stores: the one of a single replica, and the one every replica shares through a
 * real Redis (two stores on two connections play two replicas).
 */

const timing: SessionTiming = { windowMs: 600, liveMs: 400 };
const quiet = { info: () => undefined, warn: () => undefined };
let redis: RedisServer;
const connections: RedisConnection[] = [];
const stores: SessionStore[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
});

afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
  await Promise.all(connections.splice(0).map((connection) => connection.close()));
});

afterAll(async () => {
  await redis.stop();
});

async function replicas(kind: 'memory' | 'redis'): Promise<[SessionStore, SessionStore]> {
  if (kind === 'memory') {
    const store = createMemorySessionStore(timing);
    stores.push(store);
    return [store, store];
  }
  const namespace = `test-${randomUUID()}`;
  const made = await Promise.all(
    [0, 1].map(async () => {
      const connection = connectRedis(redis.url, quiet);
      connections.push(connection);
      await until(() => connection.isUp() && connection.subscriber.status === 'ready');
      const store = createRedisSessionStore({ redis: connection, namespace, timing });
      stores.push(store);
      return store;
    }),
  );
  return [made[0]!, made[1]!];
}

describe.each(['memory', 'redis'] as const)('the %s session store', (kind) => {
  it('opens, detaches and resumes a session, only for its own principal', async () => {
    const [a, b] = await replicas(kind);
    const session = await a.open('alice');
    expect(await b.isAttached(session, 'alice')).toBe(true);
    await a.detach(session, 'alice');
    expect(await b.isAttached(session, 'alice')).toBe(false);
    expect(await b.resume(session, 'mallory')).toBe(false);
    expect(await b.resume(session, 'alice')).toBe(true);
    expect(await a.isAttached(session, 'alice')).toBe(true);
    expect(await b.resume(randomUUID(), 'alice')).toBe(false);
  });

  it('tells the old socket when another resumes its session', async () => {
    const [a, b] = await replicas(kind);
    const session = await a.open('alice');
    const events: SessionEvent[] = [];
    const unsubscribe = a.subscribe(session, (event) => events.push(event));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await b.resume(session, 'alice')).toBe(true);
    await until(() => events.length > 0, 2000);
    expect(events).toEqual([{ kind: 'taken' }]);
    // Across replicas, the one that lost the session cannot release it any more. (In one process there is one
    // store, and the hub never asks it to: a superseded socket closes without detaching.)
    await a.detach(session, 'alice');
    expect(await b.isAttached(session, 'alice')).toBe(kind === 'redis');
    unsubscribe();
  });

  it('claims a task once: new, then owned; moved to a new session when its own is gone; busy while it is live', async () => {
    const [a, b] = await replicas(kind);
    const first = await a.open('alice');
    expect(await a.claimTask('alice', 't1', first)).toBe('new');
    expect(await b.claimTask('alice', 't1', first)).toBe('owned');
    const second = await b.open('alice');
    expect(await b.claimTask('alice', 't1', second)).toBe('busy');
    await a.detach(first, 'alice');
    expect(await b.claimTask('alice', 't1', second)).toBe('moved');
    expect(await a.ownerOf('alice', 't1')).toBe(second);
    // Another principal's task of the same UUID is another task.
    const other = await a.open('bob');
    expect(await a.claimTask('bob', 't1', other)).toBe('new');
  });

  it('claims a finished task anew once all it gave was delivered, and keeps it while answers wait', async () => {
    const [a, b] = await replicas(kind);
    const session = await a.open('alice');
    await a.claimTask('alice', 'delivered', session);
    await a.finishTask('alice', 'delivered');
    expect(await b.claimTask('alice', 'delivered', session)).toBe('new');
    await a.claimTask('alice', 'waiting', session);
    await a.hold('alice', 'waiting', 'frame');
    await a.finishTask('alice', 'waiting');
    expect(await b.claimTask('alice', 'waiting', session)).toBe('owned');
    expect(await b.take('alice', 'waiting', session)).toEqual(['frame']);
    expect(await b.claimTask('alice', 'waiting', session)).toBe('new');
  });

  it('holds answers for the owner, who takes each exactly once, and tells its replica', async () => {
    const [a, b] = await replicas(kind);
    const session = await a.open('alice');
    await a.claimTask('alice', 't1', session);
    const events: SessionEvent[] = [];
    b.subscribe(session, (event) => events.push(event));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await a.hold('alice', 't1', 'frame-1');
    await a.hold('alice', 't1', 'frame-2');
    await until(() => events.length >= 2, 2000);
    expect(events[0]).toEqual({ kind: 'held', taskUUID: 't1' });
    expect(await b.take('alice', 't1', randomUUID())).toEqual([]);
    const takes = await Promise.all([a.take('alice', 't1', session), b.take('alice', 't1', session)]);
    expect(takes.flat()).toEqual(['frame-1', 'frame-2']);
    expect(await b.tasksOf(session, 'alice')).toEqual(['t1']);
  });

  it('forgets a finished task and its undelivered answers after the window, and a dead replica’s records sooner', async () => {
    const [a, b] = await replicas(kind);
    const session = await a.open('alice');
    await a.claimTask('alice', 'done', session);
    await a.claimTask('alice', 'orphan', session);
    await a.hold('alice', 'done', 'frame');
    await a.finishTask('alice', 'done');
    // Heartbeats keep the live ones; then they stop, as if the replica died.
    await a.heartbeat([{ sessionId: session, principal: 'alice' }], [{ principal: 'alice', taskUUID: 'orphan' }]);
    expect(await b.ownerOf('alice', 'done')).toBe(session);
    await new Promise((resolve) => setTimeout(resolve, timing.liveMs + 150));
    expect(await b.ownerOf('alice', 'orphan')).toBeUndefined();
    expect(await b.ownerOf('alice', 'done')).toBe(session);
    await new Promise((resolve) => setTimeout(resolve, timing.windowMs));
    expect(await b.ownerOf('alice', 'done')).toBeUndefined();
    expect(await b.take('alice', 'done', session)).toEqual([]);
  });
});

describe('the Redis session store during an outage', () => {
  it('keeps working on this replica alone, and uses Redis again once it is back', async () => {
    const connection = connectRedis(redis.url, quiet);
    connections.push(connection);
    await until(() => connection.isUp());
    const store = createRedisSessionStore({ redis: connection, namespace: `test-${randomUUID()}`, timing: { windowMs: 30_000, liveMs: 30_000 } });
    stores.push(store);
    await redis.kill();
    await until(() => !connection.isUp());
    const session = await store.open('alice');
    expect(await store.claimTask('alice', 't1', session)).toBe('new');
    await store.hold('alice', 't1', 'frame');
    expect(await store.take('alice', 't1', session)).toEqual(['frame']);
    await redis.restart();
    await until(() => connection.isUp(), 10_000);
    const shared = await store.open('alice');
    expect(await store.claimTask('alice', 't2', shared)).toBe('new');
  });
});
