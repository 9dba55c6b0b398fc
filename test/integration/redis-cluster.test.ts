import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPeerLocks } from '../../src/cache/peer-lock.js';
import { connectRedis, type RedisConnection } from '../../src/cache/redis-connection.js';
import { loadConfig } from '../../src/config.js';
import { createRedisSessionStore } from '../../src/sessions/redis-session-store.js';
import { readTaskResponse } from '../helper.js';
import { kohyaSafetensorsFile, randomVectors } from '../support/embedding-fixtures.js';
import { startFakeRegistry, type FakeRegistry } from '../support/fake-registry.js';
import { startFakeWorker, type FakeWorker } from '../support/fake-worker.js';
import { freePort } from '../support/free-port.js';
import { startGateway, until, type TestGateway } from '../support/gateway.js';
import { startRedisCluster, startRedisSentinel, type RedisCluster, type RedisSentinel } from '../support/redis-cluster.js';
import { startServerProcess, waitUntilReady, type ServerProcess } from '../support/server-process.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';

/**
 * The cross-replica features on a real three-master Redis Cluster (REDIS_CLUSTER_NODES), and a gateway on
 * Redis through Sentinel: dedupe of registry fetches between two gateway processes, cache reads whose keys
 * lie on several masters, pub/sub wake-ups, async delivery (BullMQ, the ledger, webhooks) across replicas,
 * one rate-limit count, and WebSocket sessions resumed on another replica.
 */

const KEY = 'cluster-key-0123456789abcdef';
const SECRET = 'whsec-cluster-0123456789abcdef01234567';
const quiet = { info: () => undefined, warn: () => undefined };
let cluster: RedisCluster;
let registry: FakeRegistry;
let nodes: Redis[];
const connections: RedisConnection[] = [];

beforeAll(async () => {
  [cluster, registry] = await Promise.all([startRedisCluster(), startFakeRegistry()]);
  nodes = cluster.ports.map((port) => new Redis(port, '127.0.0.1'));
}, 30_000);

afterAll(async () => {
  await Promise.all(connections.map((connection) => connection.close()));
  for (const node of nodes ?? []) node.disconnect();
  await Promise.all([registry?.close(), cluster?.stop()]);
});

async function connected(): Promise<RedisConnection> {
  const connection = connectRedis(loadConfig({ REDIS_CLUSTER_NODES: cluster.nodes }).redis!, quiet);
  connections.push(connection);
  await until(() => connection.isUp() && connection.subscriber.status === 'ready', 10_000);
  return connection;
}

/** Which masters hold keys matching `pattern`. */
async function mastersHolding(pattern: string): Promise<number> {
  const counts = await Promise.all(nodes.map(async (node) => (await node.keys(pattern)).length));
  return counts.filter((count) => count > 0).length;
}

/** Commands the masters refused because their keys lie in several slots (CROSSSLOT), since they started. */
async function refusedForSlots(): Promise<number> {
  const stats = await Promise.all(nodes.map((node) => node.info('errorstats')));
  return stats.reduce((sum, text) => sum + Number(/errorstat_CROSSSLOT:count=(\d+)/.exec(text)?.[1] ?? 0), 0);
}

let versionCounter = 70_000;
function publishEmbedding(): string {
  const versionId = ++versionCounter;
  const modelId = versionId + 1_000_000;
  registry.addModelVersion({ modelId, versionId, type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: `embedding-${versionId}.safetensors`, bytes: kohyaSafetensorsFile(randomVectors(8, 768, versionId), 8, 768) }] });
  return `civitai:${modelId}@${versionId}`;
}

const imageTask = (overrides: Record<string, unknown> = {}) => ({ taskType: 'imageInference', taskUUID: randomUUID(), positivePrompt: 'a lighthouse', model: 'civitai:4384@128713', width: 512, height: 512, ...overrides });

describe('the Redis connection on a cluster', () => {
  it('wakes a replica waiting for another one through pub/sub, long before its slow re-check', async () => {
    const [one, two] = [await connected(), await connected()];
    const namespace = `test-${randomUUID()}`;
    const [holder, waiter] = [createPeerLocks(one, { namespace, lockTtlMs: 10_000, recheckMs: 30_000 }), createPeerLocks(two, { namespace, lockTtlMs: 10_000, recheckMs: 30_000 })];
    // Subscriptions are sent once the subscriber is ready; give them a moment to land.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const lease = await holder.tryAcquire('air-1');
    expect(lease).toBeDefined();
    expect(await waiter.tryAcquire('air-1')).toBeUndefined();
    const stored: { value?: string } = {};
    const started = Date.now();
    const waiting = waiter.waitFor('air-1', async () => stored.value, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    stored.value = 'resolved';
    await holder.announce('air-1');
    expect(await waiting).toBe('resolved');
    expect(Date.now() - started).toBeLessThan(3000);
    await lease?.release();
    await Promise.all([holder.close(), waiter.close()]);
  });

  it('keeps WebSocket sessions across replicas: resumed on the other one, renewed by heartbeats of several principals at once', async () => {
    const timing = { windowMs: 1500, liveMs: 1000 };
    const namespace = `test-${randomUUID()}`;
    const [one, two] = [await connected(), await connected()];
    const [a, b] = [createRedisSessionStore({ redis: one, namespace, timing }), createRedisSessionStore({ redis: two, namespace, timing })];
    const principals = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
    const sessions = await Promise.all(principals.map((principal) => a.open(principal)));
    // Their keys lie on several masters: one pipeline of them all would be refused.
    expect(await mastersHolding(`${namespace}:ws:*`)).toBeGreaterThan(1);
    const events: unknown[] = [];
    a.subscribe(sessions[0]!, (event) => events.push(event));
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Past their live time, kept alive by heartbeats alone.
    for (let beat = 0; beat < 4; beat++) {
      await a.heartbeat(sessions.map((sessionId, index) => ({ sessionId, principal: principals[index]! })), []);
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
    for (const [index, session] of sessions.entries()) expect(await b.isAttached(session, principals[index]!)).toBe(true);
    expect(await b.resume(sessions[0]!, 'alice')).toBe(true);
    await until(() => events.length > 0, 3000);
    expect(events).toEqual([{ kind: 'taken' }]);
    await Promise.all([a.close(), b.close()]);
  });
});

describe('two gateway processes on a Redis Cluster', () => {
  const servers: { process: ServerProcess; pool: Pool }[] = [];
  beforeAll(async () => {
    await Promise.all(
      [0, 1].map(async () => {
        const port = await freePort();
        const process = startServerProcess({ PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', REDIS_CLUSTER_NODES: cluster.nodes, CIVITAI_BASE_URL: registry.url });
        servers.push({ process, pool: new Pool(`http://127.0.0.1:${port}`, { connections: 50 }) });
        await waitUntilReady(port);
      }),
    );
  }, 30_000);
  afterAll(async () => {
    await Promise.all(servers.map(async ({ process, pool }) => Promise.all([pool.close(), process.stop()])));
  });

  async function post(pool: Pool, embeddings: string[]): Promise<{ status: number; code: string | undefined }> {
    const response = await pool.request({
      path: '/v1/tasks',
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([imageTask({ embeddings: embeddings.map((model) => ({ model, weight: -1 })) })]),
    });
    const body = (await response.body.json()) as { errors: { code: string }[] };
    return { status: response.statusCode, code: body.errors[0]?.code };
  }

  it('make exactly one registry call and one download for 100 concurrent requests for a cold embedding', async () => {
    const air = publishEmbedding();
    const versionId = air.split('@')[1]!;
    const downloads = registry.calls.downloads();
    registry.setBehaviour({ latencyMs: 100 });
    const answers = await Promise.all(Array.from({ length: 100 }, (_, index) => post(servers[index % 2]!.pool, [air])));
    registry.setBehaviour({ latencyMs: 0 });
    // Resolved, then refused for want of a worker (there is none).
    expect(answers.filter((answer) => answer.status === 503 && answer.code === 'noAvailableWorker')).toHaveLength(100);
    expect(registry.calls.versionLookups(versionId)).toBe(1);
    expect(registry.calls.downloads() - downloads).toBe(1);
  });

  it('read what one resolved from keys on several masters on the other, without the registry', async () => {
    const airs = Array.from({ length: 6 }, () => publishEmbedding());
    expect((await post(servers[0]!.pool, airs)).code).toBe('noAvailableWorker');
    const lookups = registry.calls.versionLookups();
    expect(await mastersHolding('clipgate:v1:model:*')).toBeGreaterThan(1);
    // The other replica's own cache is cold: one read of all six from the cluster.
    expect((await post(servers[1]!.pool, airs)).code).toBe('noAvailableWorker');
    expect(registry.calls.versionLookups()).toBe(lookups);
    // Read as it should be, not only found again by a fallback after a refused MGET.
    expect(await refusedForSlots()).toBe(0);
  });
});

describe('async delivery and rate limits across replicas on a Redis Cluster', () => {
  let worker: FakeWorker;
  let hook: WebhookReceiver;
  const gateways: TestGateway[] = [];
  beforeAll(async () => {
    [worker, hook] = await Promise.all([startFakeWorker(), startWebhookReceiver(SECRET)]);
    worker.setBehaviour({ latencyMs: 50 });
    const env = {
      REDIS_CLUSTER_NODES: cluster.nodes,
      API_KEYS: KEY,
      WORKER_URLS: worker.url,
      WORKER_HEALTH_INTERVAL_MS: '100',
      CIVITAI_BASE_URL: 'off',
      WEBHOOK_SIGNING_SECRET: SECRET,
      WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
      WEBHOOK_BACKOFF_MS: '200',
    };
    for (let replica = 0; replica < 2; replica++) {
      const gateway = await startGateway(env);
      gateways.push(gateway);
      await until(() => (gateway.resolution.redis?.isUp() ?? false) && (gateway.dispatch.pool?.workers.every((entry) => entry.healthy) ?? false));
    }
  }, 30_000);
  afterAll(async () => {
    await Promise.all(gateways.map((gateway) => gateway.close()));
    await Promise.all([worker?.close(), hook?.close()]);
  });

  async function post(gateway: TestGateway, tasks: unknown[], key = KEY) {
    const response = await gateway.app.inject({ method: 'POST', url: '/v1/tasks', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, payload: JSON.stringify(tasks) });
    return { status: response.statusCode, body: readTaskResponse(response.body) };
  }

  it('runs an async task accepted by one replica, answers getResponse for it on the other, and delivers its webhook once', async () => {
    const sent = imageTask({ deliveryMethod: 'async', webhookURL: hook.url });
    const ack = await post(gateways[0]!, [sent]);
    expect(ack.status).toBe(200);
    expect(ack.body.data).toEqual([{ taskType: 'imageInference', taskUUID: sent.taskUUID }]);
    await until(async () => (await post(gateways[1]!, [{ taskType: 'getResponse', taskUUID: sent.taskUUID }])).body.data[0]?.status === 'success', 15_000);
    const answer = await post(gateways[1]!, [{ taskType: 'getResponse', taskUUID: sent.taskUUID }]);
    await until(() => hook.received.some((delivery) => delivery.deliveryId.startsWith(sent.taskUUID)), 10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const delivered = hook.received.filter((delivery) => delivery.deliveryId.startsWith(sent.taskUUID));
    expect(delivered).toHaveLength(1);
    expect(delivered[0]!.verified).toBe(true);
    expect((JSON.parse(delivered[0]!.body) as { data: { imageUUID: string }[] }).data[0]?.imageUUID).toBe(answer.body.data[0]?.imageUUID);
    expect(worker.receivedJobs.filter((job) => job.jobId.startsWith(sent.taskUUID))).toHaveLength(1);
  }, 30_000);

  it('answers getResponse on one replica for a sync task the other ran', async () => {
    const sent = imageTask();
    const ran = await post(gateways[0]!, [sent]);
    expect(ran.status).toBe(200);
    const found = await post(gateways[1]!, [{ taskType: 'getResponse', taskUUID: sent.taskUUID }]);
    expect(found.body.data).toEqual([{ ...ran.body.data[0], status: 'success' }]);
  });

  it('counts a key once across replicas for its rate limit', async () => {
    const limited = await Promise.all(
      [0, 1].map(() => startGateway({ REDIS_CLUSTER_NODES: cluster.nodes, API_KEYS: KEY, CIVITAI_BASE_URL: 'off', RATE_LIMIT_PER_MINUTE: '3' })),
    );
    try {
      for (const gateway of limited) await until(() => gateway.resolution.redis?.isUp() ?? false);
      const getResponse = [{ taskType: 'getResponse', taskUUID: randomUUID() }];
      const statuses = [];
      for (const index of [0, 1, 0, 1]) statuses.push((await post(limited[index]!, getResponse)).status);
      expect(statuses.slice(0, 3)).not.toContain(429);
      expect(statuses[3]).toBe(429);
    } finally {
      await Promise.all(limited.map((gateway) => gateway.close()));
    }
  });
});

describe('a gateway on Redis through Sentinel', () => {
  let sentinel: RedisSentinel;
  beforeAll(async () => {
    sentinel = await startRedisSentinel();
  }, 30_000);
  afterAll(async () => {
    await sentinel?.stop();
  });

  it('finds the master through the sentinel and shares its cache there', async () => {
    const env = { REDIS_SENTINELS: sentinel.sentinels, REDIS_SENTINEL_NAME: sentinel.name, CIVITAI_BASE_URL: registry.url };
    const air = publishEmbedding();
    const lookUp = async (gateway: TestGateway) => (await gateway.app.inject({ method: 'GET', url: `/v1/models/${air}` })).statusCode;
    const first = await startGateway(env);
    try {
      await until(() => first.resolution.redis?.isUp() ?? false);
      expect(await lookUp(first)).toBe(200);
    } finally {
      await first.close();
    }
    const master = new Redis(sentinel.masterPort, '127.0.0.1');
    try {
      expect((await master.keys('clipgate:v1:model:*')).length).toBeGreaterThan(0);
    } finally {
      master.disconnect();
    }
    const lookups = registry.calls.versionLookups();
    const second = await startGateway(env);
    try {
      await until(() => second.resolution.redis?.isUp() ?? false);
      expect(await lookUp(second)).toBe(200);
      expect(registry.calls.versionLookups()).toBe(lookups);
    } finally {
      await second.close();
    }
  });
});

describe('the whole file on a Redis Cluster', () => {
  it('never sent a command whose keys cross slots (an MGET, a script or a transaction)', async () => {
    expect(await refusedForSlots()).toBe(0);
  });
});
