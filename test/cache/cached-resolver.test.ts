import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCachedResolver, type ResolutionSource } from '../../src/cache/cached-resolver.js';
import { createModelCache } from '../../src/cache/model-cache.js';
import { createPeerLocks } from '../../src/cache/peer-lock.js';
import { connectRedis, type RedisConnection } from '../../src/cache/redis-connection.js';
import { createResolutionMetrics } from '../../src/cache/resolution-metrics.js';
import { parseAir, type Air } from '../../src/contracts/air.js';
import type { Resolution } from '../../src/contracts/model-resolver.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';

const quiet = { info: () => undefined, warn: () => undefined };
const times = { ttlMs: 60_000, staleMs: 600_000, negativeTtlMs: 30_000, unavailableTtlMs: 2000 };

function air(text: string): Air {
  const parsed = parseAir(text);
  if (!parsed) throw new Error(text);
  return parsed;
}

function found(text: string): Resolution {
  return { kind: 'found', record: { air: text, name: text, type: 'textualInversion', family: 'sd1', source: 'registry' } };
}

/** A source that counts its calls and answers after a delay, like a registry on a network. */
function countingSource(answer: (air: Air) => Resolution = (a) => found(a.canonical), delayMs = 30) {
  const calls = new Map<string, number>();
  const source: ResolutionSource = async (a) => {
    calls.set(a.canonical, (calls.get(a.canonical) ?? 0) + 1);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    return answer(a);
  };
  return { source, calls, total: () => [...calls.values()].reduce((sum, n) => sum + n, 0) };
}

interface Replica {
  resolve: (text: string) => Promise<Resolution | undefined>;
  fromMemory: (text: string) => Resolution | undefined | 'not in memory';
  metrics: ReturnType<typeof createResolutionMetrics>;
  redis: RedisConnection | undefined;
  clock: { now: number };
}

const openConnections: RedisConnection[] = [];

function replica(url: string | undefined, source: ResolutionSource, namespace: string, lookupDeadlineMs = 60_000): Replica {
  const metrics = createResolutionMetrics();
  const clock = { now: Date.now() };
  const redis = url ? connectRedis(url, quiet) : undefined;
  if (redis) openConnections.push(redis);
  const cache = createModelCache({ namespace, redis, maxLocalEntries: 1000, clock: () => clock.now, metrics });
  const locks = redis ? createPeerLocks(redis, { namespace, lockTtlMs: 5000, recheckMs: 1000 }) : undefined;
  const resolver = createCachedResolver({ source, cache, locks, times, peerWaitMs: 5000, lookupDeadlineMs, metrics, clock: () => clock.now, logger: quiet });
  return {
    resolve: async (text) => (await resolver.resolveMany([air(text)])).get(air(text).canonical),
    fromMemory: (text) => {
      const answer = resolver.resolveFromMemory?.([air(text)]);
      return answer ? answer.get(air(text).canonical) : 'not in memory';
    },
    metrics,
    redis,
    clock,
  };
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let server: RedisServer;
let admin: Redis;
let namespaceCounter = 0;
const nextNamespace = () => `test${++namespaceCounter}`;

async function commandsProcessed(): Promise<number> {
  const info = await admin.info('stats');
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1]);
}

beforeAll(async () => {
  server = await startRedisServer();
  admin = new Redis(server.url);
});

afterEach(async () => {
  await Promise.all(openConnections.splice(0).map((connection) => connection.close()));
});

afterAll(async () => {
  admin.disconnect();
  await server.stop();
});

describe('cached resolver with a shared Redis', () => {
  it('makes one source call for 200 concurrent requests spread over two replicas', async () => {
    const namespace = nextNamespace();
    const counter = countingSource(undefined, 100);
    const replicas = [replica(server.url, counter.source, namespace), replica(server.url, counter.source, namespace)];
    await until(() => replicas.every((r) => r.redis?.isUp() === true));
    const results = await Promise.all(Array.from({ length: 200 }, (_, index) => replicas[index % 2]?.resolve('civitai:7808@9208')));
    expect(counter.total()).toBe(1);
    expect(results.every((result) => result?.kind === 'found')).toBe(true);
    const waited = replicas.map((r) => r.metrics.coalescedLocal + r.metrics.coalescedPeer).reduce((a, b) => a + b);
    expect(waited).toBe(199);
  });

  it('answers a warm request with no source call and exactly one Redis round trip, and from L1 with none', async () => {
    const namespace = nextNamespace();
    const counter = countingSource();
    const first = replica(server.url, counter.source, namespace);
    await until(() => first.redis?.isUp() === true);
    await first.resolve('civitai:1@1');
    expect(counter.total()).toBe(1);

    const second = replica(server.url, counter.source, namespace);
    await until(() => second.redis?.isUp() === true);
    const before = await commandsProcessed();
    expect((await second.resolve('civitai:1@1'))?.kind).toBe('found');
    // One MGET, plus the INFO that measures it.
    expect((await commandsProcessed()) - before).toBe(2);
    expect(second.metrics.l2Hits).toBe(1);

    const again = await commandsProcessed();
    await second.resolve('civitai:1@1');
    expect((await commandsProcessed()) - again).toBe(1);
    expect(second.metrics.l1Hits).toBe(1);
    expect(counter.total()).toBe(1);
  });

  it('answers from memory without a promise only what L1 holds fresh, and counts it as an L1 hit', async () => {
    const namespace = nextNamespace();
    const counter = countingSource((a) => (a.id === '404' ? { kind: 'notFound' } : found(a.canonical)));
    const only = replica(server.url, counter.source, namespace);
    await until(() => only.redis?.isUp() === true);
    expect(only.fromMemory('civitai:2@2')).toBe('not in memory');
    await only.resolve('civitai:2@2');
    await only.resolve('civitai:404@1');

    const before = await commandsProcessed();
    const hits = only.metrics.l1Hits;
    expect(only.fromMemory('civitai:2@2')).toStrictEqual(found('civitai:2@2'));
    expect(only.fromMemory('civitai:404@1')).toStrictEqual({ kind: 'notFound' });
    expect(only.metrics.l1Hits).toBe(hits + 2);
    // Only the INFO that measures it: memory answered alone.
    expect((await commandsProcessed()) - before).toBe(1);
    expect(counter.total()).toBe(2);

    // Stale: the full path serves it and refreshes it in the background, so memory does not answer.
    only.clock.now += times.ttlMs + 1;
    expect(only.fromMemory('civitai:2@2')).toBe('not in memory');
    expect((await only.resolve('civitai:2@2'))?.kind).toBe('found');
    await until(() => counter.total() === 3);
  });

  it('remembers that a model does not exist, for the negative TTL', async () => {
    const counter = countingSource(() => ({ kind: 'notFound' }));
    const one = replica(server.url, counter.source, nextNamespace());
    await until(() => one.redis?.isUp() === true);
    await one.resolve('civitai:404@1');
    await one.resolve('civitai:404@1');
    expect(counter.total()).toBe(1);
    one.clock.now += times.negativeTtlMs + 1;
    await one.resolve('civitai:404@1');
    expect(counter.total()).toBe(2);
  });

  it('serves a stale record at once, refreshes it in the background, and keeps it through a source outage', async () => {
    let up = true;
    const counter = countingSource((a) => (up ? found(`${a.canonical}`) : { kind: 'unavailable', message: 'registry down' }));
    const one = replica(server.url, counter.source, nextNamespace());
    await until(() => one.redis?.isUp() === true);
    await one.resolve('civitai:2@2');
    up = false;
    one.clock.now += times.ttlMs + 1;
    expect((await one.resolve('civitai:2@2'))?.kind).toBe('found');
    expect(one.metrics.staleServed).toBe(1);
    // Wait for the refresh to finish, not merely to start.
    await until(() => one.metrics.sourceFetches === 2);
    // The failed refresh did not replace the stale record.
    expect((await one.resolve('civitai:2@2'))?.kind).toBe('found');
  });

  it('reports a cold lookup during an outage as unavailable, briefly remembered', async () => {
    const counter = countingSource(() => ({ kind: 'unavailable', message: 'registry down' }));
    const one = replica(server.url, counter.source, nextNamespace());
    await until(() => one.redis?.isUp() === true);
    expect(await one.resolve('civitai:3@3')).toEqual({ kind: 'unavailable', message: 'registry down' });
    await one.resolve('civitai:3@3');
    expect(counter.total()).toBe(1);
    one.clock.now += times.unavailableTtlMs + 1;
    await one.resolve('civitai:3@3');
    expect(counter.total()).toBe(2);
  });
});

describe('waiting for another replica', () => {
  it('stops waiting as soon as the lock holder gives up, and fetches itself', async () => {
    const namespace = nextNamespace();
    const failing: ResolutionSource = async () => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      throw new Error('the holder crashed');
    };
    const counter = countingSource();
    const holder = replica(server.url, failing, namespace);
    const waiter = replica(server.url, counter.source, namespace);
    await until(() => holder.redis?.isUp() === true && waiter.redis?.isUp() === true);
    const held = holder.resolve('civitai:40@1').catch(() => 'failed');
    await new Promise((resolve) => setTimeout(resolve, 20));
    const started = Date.now();
    expect((await waiter.resolve('civitai:40@1'))?.kind).toBe('found');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await held).toBe('failed');
    expect(waiter.metrics.coalescedPeer).toBe(1);
  });

  it('keeps its stale record when a peer stored an outage marker', async () => {
    const namespace = nextNamespace();
    let registryUp = true;
    const counter = countingSource((a) => (registryUp ? found(a.canonical) : { kind: 'unavailable', message: 'down' }));
    const first = replica(server.url, counter.source, namespace);
    await until(() => first.redis?.isUp() === true);
    await first.resolve('civitai:41@1');
    // Redis forgets the record; another replica's cold lookup during an outage stores "unavailable".
    await admin.del(`${namespace}:model:civitai:41@1`);
    registryUp = false;
    const second = replica(server.url, counter.source, namespace);
    await until(() => second.redis?.isUp() === true);
    expect((await second.resolve('civitai:41@1'))?.kind).toBe('unavailable');
    first.clock.now += times.ttlMs + 1;
    expect((await first.resolve('civitai:41@1'))?.kind).toBe('found');
    await until(() => first.metrics.sourceFetches >= 1 || counter.total() >= 3);
    expect((await first.resolve('civitai:41@1'))?.kind).toBe('found');
  });
});

describe('cached resolver when Redis fails', () => {
  it('works without Redis at all, deduplicating within the process', async () => {
    const counter = countingSource();
    const alone = replica(undefined, counter.source, nextNamespace());
    await Promise.all(Array.from({ length: 50 }, () => alone.resolve('civitai:4@4')));
    expect(counter.total()).toBe(1);
  });

  it('keeps answering while Redis is killed, and uses it again once it returns', async () => {
    const ownServer = await startRedisServer();
    try {
      const namespace = nextNamespace();
      const counter = countingSource();
      const one = replica(ownServer.url, counter.source, namespace);
      await until(() => one.redis?.isUp() === true);
      await one.resolve('civitai:10@1');

      await ownServer.kill();
      await until(() => one.redis?.isUp() === false);
      // Cached locally: still answered. New: answered from the source. Nothing fails.
      expect((await one.resolve('civitai:10@1'))?.kind).toBe('found');
      const results = await Promise.all(Array.from({ length: 20 }, (_, index) => one.resolve(`civitai:11@${index}`)));
      expect(results.every((result) => result?.kind === 'found')).toBe(true);

      await ownServer.restart();
      await until(() => one.redis?.isUp() === true);
      await one.resolve('civitai:12@1');
      const other = replica(ownServer.url, counter.source, namespace);
      await until(() => other.redis?.isUp() === true);
      const calls = counter.total();
      expect((await other.resolve('civitai:12@1'))?.kind).toBe('found');
      expect(counter.total()).toBe(calls);
      expect(other.metrics.l2Hits).toBe(1);
    } finally {
      await ownServer.stop();
    }
  });

  it('starts while Redis is down and begins using it when it comes up', async () => {
    const ownServer = await startRedisServer();
    await ownServer.kill();
    try {
      const counter = countingSource();
      const namespace = nextNamespace();
      const one = replica(ownServer.url, counter.source, namespace);
      expect((await one.resolve('civitai:20@1'))?.kind).toBe('found');
      await ownServer.restart();
      await until(() => one.redis?.isUp() === true);
      await one.resolve('civitai:21@1');
      const other = replica(ownServer.url, counter.source, namespace);
      await until(() => other.redis?.isUp() === true);
      await other.resolve('civitai:21@1');
      expect(counter.calls.get('civitai:21@1')).toBe(1);
    } finally {
      await ownServer.stop();
    }
  });
});

describe('what one request may ask of the source', () => {
  it('looks up at most its share of cold AIRs; the rest are deferred, and looked up by a retry', async () => {
    const calls: string[] = [];
    const source: ResolutionSource = async (air) => {
      calls.push(air.canonical);
      return { kind: 'notFound' };
    };
    const { metrics } = replica(undefined, source, nextNamespace());
    const resolver = createCachedResolver({ source, cache: createModelCache({ namespace: nextNamespace(), redis: undefined, maxLocalEntries: 1000, clock: Date.now, metrics }), locks: undefined, times, peerWaitMs: 5000, lookupDeadlineMs: 60_000, metrics, clock: Date.now, logger: quiet });
    const airs = Array.from({ length: 10 }, (_, index) => air(`civitai:${index + 1}@1`));
    const first = await resolver.resolveMany(airs, { sourceLookups: 4 });
    expect(calls).toHaveLength(4);
    expect([...first.values()].filter((resolution) => resolution.kind === 'deferred')).toHaveLength(6);
    const second = await resolver.resolveMany(airs, { sourceLookups: 4 });
    expect(calls).toHaveLength(8);
    expect([...second.values()].filter((resolution) => resolution.kind === 'deferred')).toHaveLength(2);
    expect(metrics.lookupsDeferred).toBe(8);
  });

  it('answers within the lookup deadline while a lookup hangs, and caches what the lookup finds later', async () => {
    let finish: (resolution: Resolution) => void = () => undefined;
    const source: ResolutionSource = () => new Promise((resolve) => (finish = resolve));
    const { resolve, metrics } = replica(undefined, source, nextNamespace(), 200);
    const started = Date.now();
    expect(await resolve('civitai:5@5')).toMatchObject({ kind: 'unavailable', message: expect.stringContaining('more than 0.2 s') });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(metrics.lookupsOverDeadline).toBe(1);
    finish({ kind: 'notFound' });
    await until(async () => (await resolve('civitai:5@5'))?.kind === 'notFound');
  });
});
