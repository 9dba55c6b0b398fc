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
  ['in Redis', () => createRedisTaskLedger({ redis: connection, namespace: `clipgate-test-${Date.now()}:`, ttlSeconds: 1, logger: silent })],
])('the task ledger %s', (_, make: () => TaskLedger) => {
  it('records a task as processing, then its results; per principal; and forgets it after the TTL', async () => {
    const ledger = make();
    ledger.started('alice', 't1', 'imageInference');
    await expect.poll(() => ledger.get('alice', 't1').then((entry) => entry?.state)).toBe('processing');
    await ledger.finished('alice', { taskUUID: 't1', taskType: 'imageInference', state: 'success', results: [image(2n ** 60n)], errors: [] });
    expect(await ledger.get('alice', 't1')).toMatchObject({ state: 'success', results: [{ seed: 2n ** 60n }] });
    expect(await ledger.get('bob', 't1')).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(await ledger.get('alice', 't1')).toBeUndefined();
  });
});

describe('the Redis ledger, shared', () => {
  it('answers on one replica for a task another replica recorded, and says when Redis is gone', async () => {
    const namespace = `clipgate-test-shared-${Date.now()}:`;
    const writer = createRedisTaskLedger({ redis: connection, namespace, ttlSeconds: 60, logger: silent });
    const other = await connected(redis.url);
    const reader = createRedisTaskLedger({ redis: other, namespace, ttlSeconds: 60, logger: silent });
    await writer.finished('alice', { taskUUID: 't2', taskType: 'imageInference', state: 'error', results: [], errors: [{ code: 'workerFailed', message: 'm', retryable: true }] });
    expect(await reader.get('alice', 't2')).toMatchObject({ state: 'error', errors: [{ code: 'workerFailed' }] });
    const keys = await other.client.keys(`${namespace}*`);
    expect(keys).toHaveLength(1);
    expect(keys[0]).not.toContain('alice');
    await other.close();
    await expect(reader.get('alice', 't2')).rejects.toThrow();
  });
});
