import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTaskResponse } from '../helper.js';
import { startFakeWorker, type FakeWorker } from '../support/fake-worker.js';
import { startGateway, until, type TestGateway } from '../support/gateway.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';

/** Two replicas sharing Redis: a task answered by one is found by getResponse on the other. */

const KEY = 'ledger-key-0123456789abcdef';
let redis: RedisServer;
let worker: FakeWorker;
const gateways: TestGateway[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  worker = await startFakeWorker();
  for (let replica = 0; replica < 2; replica++) {
    const gateway = await startGateway({ REDIS_URL: redis.url, API_KEYS: KEY, WORKER_URLS: worker.url, WORKER_HEALTH_INTERVAL_MS: '100', CIVITAI_BASE_URL: 'off' });
    gateways.push(gateway);
    await until(() => gateway.dispatch.pool?.workers.every((entry) => entry.healthy) ?? false);
  }
}, 30_000);

afterAll(async () => {
  await Promise.all(gateways.map((gateway) => gateway.close()));
  await worker.close();
  await redis.stop();
});

async function post(gateway: TestGateway, tasks: unknown[]) {
  const response = await gateway.app.inject({ method: 'POST', url: '/v1/tasks', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, payload: JSON.stringify(tasks) });
  return { status: response.statusCode, body: readTaskResponse(response.body) };
}

describe('the task ledger across replicas', () => {
  it('answers getResponse on one replica for a task the other ran, exact seed and all', async () => {
    const taskUUID = randomUUID();
    const task = { taskType: 'imageInference', taskUUID, positivePrompt: 'a lighthouse', model: 'civitai:4384@128713', width: 512, height: 512, seed: 18446744073709551615n, numberResults: 1 };
    const payload = JSON.stringify([task], (_key, value: unknown) => (typeof value === 'bigint' ? `@@${value}@@` : value)).replace(/"@@(\d+)@@"/g, '$1');
    const ran = await gateways[0]!.app.inject({ method: 'POST', url: '/v1/tasks', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, payload });
    expect(ran.statusCode, ran.body).toBe(200);
    const found = await post(gateways[1]!, [{ taskType: 'getResponse', taskUUID }]);
    expect(found.status).toBe(200);
    expect(found.body.data).toEqual([{ ...readTaskResponse(ran.body).data[0], status: 'success' }]);
    expect(found.body.data[0]?.seed).toBe(18446744073709551615n);
  });
});
