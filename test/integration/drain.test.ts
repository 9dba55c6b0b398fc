import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { Client, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeWorker, type FakeWorker } from '../support/fake-worker.js';
import { freePort } from '../support/free-port.js';
import { until } from '../support/gateway.js';
import { startServerProcess, waitUntilReady, type ServerProcess } from '../support/server-process.js';

let worker: FakeWorker | undefined;
let server: ServerProcess | undefined;

afterEach(async () => {
  await server?.stop();
  await worker?.close();
});

describe('graceful drain', () => {
  it('finishes in-flight tasks after SIGTERM, refuses new ones, then exits 0', async () => {
    worker = await startFakeWorker();
    worker.setBehaviour({ latencyMs: 1500 });
    const port = await freePort();
    server = startServerProcess({ PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', CIVITAI_BASE_URL: 'off', WORKER_URLS: worker.url, WORKER_HEALTH_INTERVAL_MS: '100' });
    await waitUntilReady(port);
    const task = { taskType: 'imageInference', taskUUID: randomUUID(), positivePrompt: 'a lighthouse', model: 'civitai:4384@128713', width: 512, height: 512, outputType: 'base64Data' };
    // Wait until the gateway has seen the worker healthy, then send work that is still running at SIGTERM.
    await until(async () => {
      const probe = await request(`http://127.0.0.1:${port}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ ...task, taskUUID: randomUUID() }]) });
      await probe.body.dump();
      return probe.statusCode === 200;
    }, 15_000);

    const inFlight = request(`http://127.0.0.1:${port}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([task]) });
    await until(() => worker?.stats.running() === 1);
    const exited = once(server.child, 'exit');
    server.child.kill('SIGTERM');
    await until(() => server?.output().includes('shutting down') ?? false);
    // A new connection during the drain is refused, while the running task goes on.
    const fresh = new Client(`http://127.0.0.1:${port}`);
    await expect(fresh.request({ path: '/health/live', method: 'GET' })).rejects.toThrow();
    await fresh.close();
    expect(worker.stats.running()).toBe(1);

    const response = await inFlight;
    const body = (await response.body.json()) as { data: { taskUUID: string }[] };
    expect(response.statusCode).toBe(200);
    expect(body.data[0]?.taskUUID).toBe(task.taskUUID);
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
    expect(server.output()).toContain('shutting down');
  });
});
