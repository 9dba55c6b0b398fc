import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, type RedisConnection } from '../../src/cache/redis-connection.js';
import type { TaskLedger } from '../../src/contracts/task-ledger.js';
import { decodeEntry, encodeEntry } from '../../src/ledger/ledger-codec.js';
import { createMemoryTaskLedger } from '../../src/ledger/memory-task-ledger.js';
import { createRedisTaskLedger } from '../../src/ledger/redis-task-ledger.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';

const silent = { info: () => undefined, warn: () => undefined };
const image = (seed: number | bigint | string) => ({ taskType: 'imageInference' as const, taskUUID: 't1', imageUUID: 'i1', imageURL: 'http://x/i1.png', seed });

let redis: RedisServer;
let connection: RedisConnection;
beforeAll(async () => {
  redis = await startRedisServer();
  connection = await connected(redis.url);
});
afterAll(async () => {
  await connection.close();
  await redis.stop();
});

async function connected(url: string): Promise<RedisConnection> {
  const made = connectRedis(url, silent);
  for (let waited = 0; !made.isUp(); waited += 20) {
    if (waited > 5000) throw new Error('Redis did not come up');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return made;
}

describe('the ledger codec', () => {
  it('keeps every digit of a seed beyond 2^53, and the kind of every seed', () => {
    const entry = { taskUUID: 't1', taskType: 'imageInference', state: 'success' as const, results: [image(18446744073709551615n), image(42), image('7')], errors: [], updatedAt: 1 };
    expect(decodeEntry(encodeEntry(entry))).toEqual(entry);
  });

  it('reads what is not an entry as nothing, never as a guess', () => {
    expect(decodeEntry('{"taskUUID":"t1"}')).toBeUndefined();
    expect(decodeEntry('not json')).toBeUndefined();
    expect(decodeEntry(null)).toBeUndefined();
  });
});

describe.each([
  ['in process', () => createMemoryTaskLedger({ ttlSeconds: 1 })],
  ['in Redis', () => createRedisTaskLedger({ redis: connection, namespace: `clipgate-test-${Date.now()}-${Math.random()}`, ttlSeconds: 1, logger: silent })],
])('the task ledger %s', (_, make: () => TaskLedger) => {
  const claim = { taskUUID: 't1', taskType: 'imageInference', fingerprint: 'f1', deliveryMethod: 'sync' } as const;
  const success = { taskUUID: 't1', taskType: 'imageInference', state: 'success' as const, results: [image(2n ** 60n)], errors: [] };

  it('records a task as processing, then its results; per principal; and forgets it after the TTL', async () => {
    const ledger = make();
    expect(await ledger.claim('alice', claim)).toEqual({ kind: 'claimed' });
    expect(await ledger.get('alice', 't1')).toMatchObject({ state: 'processing', fingerprint: 'f1' });
    await ledger.finished('alice', success);
    expect(await ledger.get('alice', 't1')).toMatchObject({ state: 'success', results: [{ seed: 2n ** 60n }] });
    expect(await ledger.get('bob', 't1')).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(await ledger.get('alice', 't1')).toBeUndefined();
  });

  it('claims a taskUUID once: a second claim gets the record, for another key it is a new task', async () => {
    const ledger = make();
    expect(await ledger.claim('alice', claim)).toEqual({ kind: 'claimed' });
    expect(await ledger.claim('alice', { ...claim, fingerprint: 'f2' })).toMatchObject({ kind: 'taken', entry: { state: 'processing', fingerprint: 'f1' } });
    expect(await ledger.claim('bob', claim)).toEqual({ kind: 'claimed' });
    await ledger.finished('alice', success);
    expect(await ledger.claim('alice', claim)).toMatchObject({ kind: 'taken', entry: { state: 'success' } });
  });

  it('lets a task that ended in error be claimed again', async () => {
    const ledger = make();
    await ledger.claim('alice', claim);
    await ledger.finished('alice', { ...success, state: 'error', results: [], errors: [] });
    expect(await ledger.claim('alice', claim)).toEqual({ kind: 'claimed' });
  });

  it("lets a sync task's processing record be claimed again once it is abandoned, never an async one's", async () => {
    const ledger = make();
    await ledger.claim('alice', claim);
    await ledger.claim('alice', { ...claim, taskUUID: 't2', deliveryMethod: 'async' });
    // Not yet abandoned: taken.
    expect(await ledger.claim('alice', { ...claim, abandonedBefore: Date.now() - 60_000 })).toMatchObject({ kind: 'taken' });
    // Written before the cut-off: abandoned, claimed again.
    expect(await ledger.claim('alice', { ...claim, abandonedBefore: Date.now() + 1000 })).toEqual({ kind: 'claimed' });
    expect(await ledger.claim('alice', { ...claim, taskUUID: 't2', deliveryMethod: 'async', abandonedBefore: Date.now() + 1000 })).toMatchObject({ kind: 'taken' });
  });

  it('writes the final record once: a second final write (a job run again) leaves the first', async () => {
    const ledger = make();
    await ledger.claim('alice', claim);
    const first = await ledger.finished('alice', success);
    const second = await ledger.finished('alice', { ...success, results: [{ ...image(1), imageUUID: 'other' }] });
    expect(second).toEqual(first);
    expect((await ledger.get('alice', 't1'))?.results.map((result) => result.imageUUID)).toEqual(['i1']);
  });

  it("keeps a task's events in order and gives those after an id", async () => {
    const ledger = make();
    await ledger.claim('alice', claim);
    ledger.addEvent('alice', 't1', { type: 'queued', position: 3 });
    ledger.addEvent('alice', 't1', { type: 'started' });
    ledger.addEvent('alice', 't1', { type: 'progress', step: 1, steps: 4 });
    await expect.poll(() => ledger.events('alice', 't1').then((events) => events.length)).toBe(3);
    const events = await ledger.events('alice', 't1');
    expect(events.map((stored) => stored.event.type)).toEqual(['queued', 'started', 'progress']);
    expect((await ledger.events('alice', 't1', events[0]!.id)).map((stored) => stored.event.type)).toEqual(['started', 'progress']);
    expect(await ledger.events('bob', 't1')).toEqual([]);
  });

  it('records webhook attempts per task', async () => {
    const ledger = make();
    await ledger.addWebhookAttempt('alice', 't1', { imageUUID: 'i1', attempt: 1, at: 5, delivered: false, status: 503, reason: 'down' });
    await ledger.addWebhookAttempt('alice', 't1', { imageUUID: 'i1', attempt: 2, at: 6, delivered: true, status: 200 });
    expect((await ledger.webhookAttempts('alice', 't1')).map((attempt) => attempt.delivered)).toEqual([false, true]);
    expect(await ledger.webhookAttempts('bob', 't1')).toEqual([]);
  });
});

describe('the task ledger in Redis, on the sync path', () => {
  const calls = async (command: string) => {
    const stats = await connection.client.info('commandstats');
    return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
  };

  it('claims a new sync task with one SET and no script; only the final write is a script', async () => {
    const ledger = createRedisTaskLedger({ redis: connection, namespace: `clipgate-test-${Date.now()}-${Math.random()}`, ttlSeconds: 60, logger: silent });
    const before = { set: await calls('set'), evalsha: (await calls('evalsha')) + (await calls('eval')) };
    const tasks = Array.from({ length: 20 }, (_, index) => `sync-${index}`);
    for (const taskUUID of tasks) expect(await ledger.claim('alice', { taskUUID, taskType: 'imageInference', deliveryMethod: 'sync' })).toEqual({ kind: 'claimed' });
    expect((await calls('eval')) + (await calls('evalsha')) - before.evalsha).toBe(0);
    expect((await calls('set')) - before.set).toBe(20);
    for (const taskUUID of tasks) await ledger.finished('alice', { taskUUID, taskType: 'imageInference', state: 'success', results: [], errors: [], deliveryMethod: 'sync' });
    expect((await calls('eval')) + (await calls('evalsha')) - before.evalsha).toBe(20);
    // A resend is answered from the record the SET found, without a script either.
    expect(await ledger.claim('alice', { taskUUID: 'sync-0', taskType: 'imageInference', deliveryMethod: 'sync' })).toMatchObject({ kind: 'taken', entry: { state: 'success' } });
    expect((await calls('eval')) + (await calls('evalsha')) - before.evalsha).toBe(20);
  });
});
