import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kohyaSafetensorsFile, maliciousPickleFile, randomVectors } from '../support/embedding-fixtures.js';
import { startFakeRegistry, type FakeRegistry } from '../support/fake-registry.js';
import { startFakeWorker, type FakeWorker } from '../support/fake-worker.js';
import { startGateway, until, type TestGateway } from '../support/gateway.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { openTaskSocket } from '../support/task-socket-client.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';
import { parsePrometheusText, sampleValue, type PrometheusSample } from '../support/prometheus-text.js';

/**
 * /metrics of a whole gateway (Redis, a registry with an embedding and an unsafe file, a worker that takes
 * its time, webhooks, a WebSocket) read while it is under load and after: each series says what happened.
 */

const SECRET = 'metrics-webhook-secret-0123456789';
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
const SD15 = 'civitai:4384@128713';
let redis: RedisServer;
let registry: FakeRegistry;
let worker: FakeWorker;
let receiver: WebhookReceiver;
let gateway: TestGateway;
let baseUrl: string;
let goodAir: string;
let unsafeAir: string;

beforeAll(async () => {
  [redis, registry, worker, receiver] = await Promise.all([startRedisServer(), startFakeRegistry(), startFakeWorker({ maxConcurrency: 4 }), startWebhookReceiver(SECRET)]);
  registry.addModelVersion({ modelId: 7808, versionId: 9208, type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'easynegative.safetensors', bytes: kohyaSafetensorsFile(randomVectors(4, 768, 1), 4, 768) }] });
  registry.addModelVersion({ modelId: 7809, versionId: 9209, type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'unsafe.pt', bytes: maliciousPickleFile() }] });
  goodAir = 'civitai:7808@9208';
  unsafeAir = 'civitai:7809@9209';
  gateway = await startGateway({
    REDIS_URL: redis.url,
    CIVITAI_BASE_URL: registry.url,
    WORKER_URLS: worker.url,
    WORKER_HEALTH_INTERVAL_MS: '100',
    WEBHOOK_SIGNING_SECRET: SECRET,
    WEBHOOK_REQUIRE_HTTPS: 'false',
    WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
    QUEUE_MAX: '1000',
    METRICS_TOKEN,
  });
  await gateway.app.listen({ port: 0, host: '127.0.0.1' });
  baseUrl = `http://127.0.0.1:${(gateway.app.server.address() as AddressInfo).port}`;
  await until(() => (gateway.dispatch.pool?.workers.every((entry) => entry.healthy) ?? false) && gateway.resolution.redis?.isUp() === true);
}, 30_000);

afterAll(async () => {
  await gateway?.close();
  await Promise.all([worker?.close(), registry?.close(), receiver?.close(), redis?.stop()]);
});

function task(extra: Record<string, unknown> = {}) {
  return { taskType: 'imageInference', taskUUID: randomUUID(), model: SD15, positivePrompt: 'a lighthouse', width: 512, height: 512, ...extra };
}

async function post(tasks: unknown[]): Promise<{ status: number; body: { data?: unknown[]; errors?: { code: string }[] } }> {
  const response = await fetch(`${baseUrl}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(tasks) });
  return { status: response.status, body: (await response.json()) as { data?: unknown[]; errors?: { code: string }[] } };
}

async function scrape(): Promise<PrometheusSample[]> {
  const response = await fetch(`${baseUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await response.text());
}

describe('/metrics', () => {
  it('is behind METRICS_TOKEN when one is set, answering in the error shape otherwise', async () => {
    for (const headers of [{}, { authorization: 'Bearer not-the-metrics-token-at-all' }] as Record<string, string>[]) {
      const response = await fetch(`${baseUrl}/metrics`, { headers });
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ errors: [{ code: 'invalidMetricsToken' }] });
    }
  });

  it('shows requests, tasks, workers, the queue, the cache, the registry and refusals while under load and after', async () => {
    // 120 tasks in 60 requests, each with the same cold embedding: one lookup, the others coalesce on it.
    worker.setBehaviour({ latencyMs: 150 });
    const load = Array.from({ length: 60 }, () => post([task({ embeddings: [{ model: goodAir, weight: -1 }] }), task()]));

    // Mid-run: every slot of the worker is taken and the rest wait in the admission queue.
    await until(() => worker.stats.running() === 4);
    const during = await scrape();
    expect(sampleValue(during, 'clipgate_worker_in_flight', { worker: worker.url })).toBe(4);
    expect(sampleValue(during, 'clipgate_worker_capacity', { worker: worker.url })).toBe(4);
    expect(sampleValue(during, 'clipgate_worker_queue_length')).toBeGreaterThan(0);
    expect(sampleValue(during, 'clipgate_worker_healthy', { worker: worker.url })).toBe(1);

    const answers = await Promise.all(load);
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    const refused = await post([task({ embeddings: [{ model: unsafeAir, weight: 1 }] })]);
    expect(refused.body.errors?.[0]?.code).toBe('embeddingFileUnsafe');
    const unknownType = await post([{ taskType: 'videoInference', taskUUID: randomUUID() }]);
    expect(unknownType.status).toBe(400);

    const after = await scrape();
    expect(sampleValue(after, 'clipgate_http_request_duration_seconds_count', { method: 'POST', route: '/v1/tasks', status_code: '200' })).toBe(60);
    expect(sampleValue(after, 'clipgate_task_duration_seconds_count', { task_type: 'imageInference', outcome: 'success' })).toBe(120);
    expect(sampleValue(after, 'clipgate_task_duration_seconds_count', { task_type: 'imageInference', outcome: 'embeddingFileUnsafe' })).toBe(1);
    // A task type nobody runs is labelled unknown: a label never takes what a client writes.
    expect(sampleValue(after, 'clipgate_task_duration_seconds_count', { task_type: 'unknown', outcome: 'unsupportedTaskType' })).toBe(1);
    expect(after.some((sample) => sample.labels['task_type'] === 'videoInference')).toBe(false);
    expect(sampleValue(after, 'clipgate_worker_queue_wait_seconds_count')).toBeGreaterThan(0);
    expect(sampleValue(after, 'clipgate_worker_in_flight', { worker: worker.url })).toBe(0);
    expect(sampleValue(after, 'clipgate_worker_breaker_state', { worker: worker.url, state: 'closed' })).toBe(1);
    expect(sampleValue(after, 'clipgate_worker_breaker_state', { worker: worker.url, state: 'open' })).toBe(0);

    // The registry saw one lookup per AIR; the metrics count what it saw, and the lookups that waited on it.
    expect(sampleValue(after, 'clipgate_registry_request_duration_seconds_count', { outcome: 'success' })).toBe(registry.calls.versionLookups());
    expect(registry.calls.versionLookups()).toBe(2);
    expect(sampleValue(after, 'clipgate_model_file_downloads_total', { kind: 'file' })).toBe(registry.calls.downloads());
    expect(sampleValue(after, 'clipgate_model_file_refusals_total', { code: 'embeddingFileUnsafe' })).toBe(1);
    expect(sampleValue(after, 'clipgate_cache_lookups_total', { result: 'miss' })).toBeGreaterThanOrEqual(2);
    expect(sampleValue(after, 'clipgate_cache_coalesced_total', { where: 'local' })).toBeGreaterThan(0);

    // Process metrics come along (prom-client's defaults).
    expect(sampleValue(after, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  }, 60_000);

  it('shows the async queue, its wait and webhook deliveries', async () => {
    worker.setBehaviour({ latencyMs: 0 });
    const accepted = await post([task({ deliveryMethod: 'async', webhookURL: receiver.url }), task({ deliveryMethod: 'async' })]);
    expect(accepted.status).toBe(200);
    await until(() => receiver.received.length >= 1, 15_000);
    const samples = await scrape();
    expect(sampleValue(samples, 'clipgate_job_queue_wait_seconds_count', { queue: 'clipgate-tasks' })).toBe(2);
    expect(sampleValue(samples, 'clipgate_job_queue_wait_seconds_count', { queue: 'clipgate-webhooks' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(samples, 'clipgate_webhook_attempt_duration_seconds_count', { outcome: 'delivered' })).toBe(receiver.received.length);
    // Counted by BullMQ in Redis, for every replica: nothing waits now.
    expect(sampleValue(samples, 'clipgate_job_queue_jobs', { queue: 'clipgate-tasks', state: 'waiting' })).toBe(0);
    expect(sampleValue(samples, 'clipgate_job_queue_jobs', { queue: 'clipgate-webhooks', state: 'delayed' })).toBe(0);
  }, 30_000);

  it('counts WebSocket sessions as they open and close', async () => {
    const socket = await openTaskSocket(`${baseUrl.replace('http', 'ws')}/v1`);
    await socket.authenticate('any-key-for-an-open-gateway');
    await until(async () => sampleValue(await scrape(), 'clipgate_websocket_sessions_attached') === 1);
    socket.close();
    await until(async () => sampleValue(await scrape(), 'clipgate_websocket_sessions_attached') === 0);
  });
});

describe('/metrics switched off', () => {
  it('is not there with METRICS_ENABLED=false', async () => {
    const off = await startGateway({ CIVITAI_BASE_URL: 'off', METRICS_ENABLED: 'false' });
    try {
      const response = await off.app.inject({ method: 'GET', url: '/metrics' });
      expect(response.statusCode).toBe(404);
    } finally {
      await off.close();
    }
  });
});
