import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startFakeWorker, type FakeWorker } from '../support/fake-worker.js';
import { freePort } from '../support/free-port.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { startServerProcess, waitUntilReady, type ServerProcess } from '../support/server-process.js';
import { until } from '../support/gateway.js';

/**
 * docker/nginx.conf, the compose stack's load balancer, run for real: Debian's nginx on loopback in front of two
 * gateway processes sharing a Redis, with the conf's own directives and only its addresses put in. A REST task,
 * a WebSocket session through the upgrade, and a replica SIGKILLed with requests in flight.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const KEY = 'nginx-key-0123456789abcdef';
let redis: RedisServer;
let worker: FakeWorker;
let nginx: ChildProcess;
let nginxOutput = '';
let prefix: string;
let pool: Pool;
let base: string;
const replicas: { port: number; process: ServerProcess }[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  worker = await startFakeWorker({ maxConcurrency: 100 });
  for (let index = 0; index < 2; index++) {
    const port = await freePort();
    const process = startServerProcess({
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      API_KEYS: KEY,
      REDIS_URL: redis.url,
      CIVITAI_BASE_URL: 'off',
      WORKER_URLS: worker.url,
      WORKER_HEALTH_INTERVAL_MS: '100',
      // A claim of a replica that dies is abandoned after 2 × this + 1 s.
      TASK_TIMEOUT_MS: '2000',
    });
    replicas.push({ port, process });
  }
  await Promise.all(replicas.map(({ port }) => waitUntilReady(port)));
  const port = await freePort();
  prefix = mkdtempSync(join(tmpdir(), 'clipgate-nginx-'));
  const conf = readFileSync(join(root, 'docker/nginx.conf'), 'utf8')
    .replace('gateway-1:8080', `127.0.0.1:${replicas[0]!.port}`)
    .replace('gateway-2:8080', `127.0.0.1:${replicas[1]!.port}`)
    .replace('listen 8080;', `listen 127.0.0.1:${port};`)
    .replace('pid /tmp/clipgate-nginx.pid;', `pid ${join(prefix, 'nginx.pid')};`);
  writeFileSync(join(prefix, 'nginx.conf'), conf);
  nginx = spawn('nginx', ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  nginx.stderr?.on('data', (chunk: Buffer) => (nginxOutput += chunk.toString()));
  nginx.once('error', (error) => (nginxOutput += `cannot run nginx (apt-get install nginx-light): ${error.message}`));
  await waitUntilReady(port).catch((error: unknown) => {
    throw new Error(`${String(error)}\n${nginxOutput}`);
  });
  base = `http://127.0.0.1:${port}`;
  pool = new Pool(base, { connections: 40 });
  // Both replicas have seen the worker.
  await until(async () => (await Promise.all(replicas.map(({ port: replica }) => post(new Pool(`http://127.0.0.1:${replica}`), [task()])))).every((answer) => answer.status === 200), 15_000);
}, 60_000);

afterAll(async () => {
  await pool?.close();
  nginx?.kill('SIGTERM');
  await Promise.all(replicas.map(({ process }) => process.stop()));
  await worker.close();
  await redis.stop();
  rmSync(prefix, { recursive: true, force: true });
});

const task = (overrides: Record<string, unknown> = {}) => ({ taskType: 'imageInference', taskUUID: randomUUID(), model: 'civitai:4384@128713', positivePrompt: 'a lighthouse', width: 512, height: 512, outputType: 'URL', ...overrides });

async function post(target: Pool, tasks: unknown[]) {
  const response = await target.request({ path: '/v1/tasks', method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(tasks), headersTimeout: 60_000, bodyTimeout: 60_000 });
  const text = await response.body.text();
  return { status: response.statusCode, body: JSON.parse(text) as { data?: { taskUUID: string; imageURL?: string }[]; errors?: { code: string }[] }, requestId: response.headers['x-request-id'] };
}

describe('nginx (docker/nginx.conf) in front of two replicas', () => {
  it('passes a REST task through', async () => {
    const sent = task();
    const answer = await post(pool, [sent]);
    expect(answer.status).toBe(200);
    expect(answer.body.data?.[0]).toMatchObject({ taskUUID: sent.taskUUID, imageURL: expect.stringMatching(/\/v1\/images\//) });
    expect(answer.requestId).toBeDefined();
  });

  it('keeps each replica\'s /metrics to the inside network, answering in clipgate\'s error shape', async () => {
    const response = await pool.request({ path: '/metrics', method: 'GET' });
    expect(response.statusCode).toBe(404);
    expect(await response.body.json()).toMatchObject({ errors: [{ code: 'routeNotFound' }] });
    const direct = await fetch(`http://127.0.0.1:${replicas[0]!.port}/metrics`);
    expect(direct.status).toBe(200);
    expect(await direct.text()).toContain('clipgate_http_request_duration_seconds');
  });

  it('passes a WebSocket session through the upgrade: authenticate, then a task and its image', async () => {
    const socket = new WebSocket(`${base.replace('http', 'ws')}/v1`);
    const frames: { data?: { taskType: string; taskUUID?: string; connectionSessionUUID?: string; imageURL?: string }[] }[] = [];
    socket.on('message', (data) => frames.push(JSON.parse(String(data)) as (typeof frames)[number]));
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.send(JSON.stringify([{ taskType: 'authentication', apiKey: KEY }]));
    await until(() => frames.some((frame) => frame.data?.[0]?.connectionSessionUUID !== undefined), 5000);
    const sent = task();
    socket.send(JSON.stringify([sent]));
    await until(() => frames.some((frame) => frame.data?.[0]?.taskUUID === sent.taskUUID && frame.data[0].imageURL !== undefined), 10_000);
    socket.close();
  });

  it('keeps answering when a replica is SIGKILLed with requests in flight: those are retried on the other, nothing is generated twice over', async () => {
    worker.setBehaviour({ latencyMs: 800 });
    const inFlight = Array.from({ length: 20 }, () => task());
    const answers = Promise.all(inFlight.map((sent) => post(pool, [sent])));
    await until(() => worker.stats.running() >= 10, 10_000);
    await replicas[0]!.process.stop();
    worker.setBehaviour({ latencyMs: 50 });
    const settled = await answers;
    expect(settled.map((answer) => answer.status)).toEqual(inFlight.map(() => 200));
    expect(settled.map((answer) => answer.body.data?.[0]?.taskUUID)).toEqual(inFlight.map((sent) => sent.taskUUID));
    const later = await Promise.all(Array.from({ length: 10 }, () => post(pool, [task()])));
    expect(later.map((answer) => answer.status)).toEqual(later.map(() => 200));
    // A task the dead replica was running ran again on the live one (its first result died with it), never more.
    for (const sent of inFlight) expect(worker.receivedJobs.filter((job) => job.jobId.startsWith(sent.taskUUID)).length).toBeLessThanOrEqual(2);
  }, 60_000);
});
