import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { readTaskResponse } from '../helper.js';
import { startFakeWorker, type FakeWorker } from '../support/fake-worker.js';
import { freePort } from '../support/free-port.js';
import { until } from '../support/gateway.js';
import { startServerProcess, waitUntilReady, type ServerProcess } from '../support/server-process.js';
import { openTaskSocket } from '../support/task-socket-client.js';

/** SIGTERM on a real gateway process with work in flight: nothing is reset, everything is answered. */

let worker: FakeWorker | undefined;
let server: ServerProcess | undefined;

afterEach(async () => {
  await server?.stop();
  await worker?.close();
});

const task = () => ({ taskType: 'imageInference', taskUUID: randomUUID(), positivePrompt: 'a lighthouse', model: 'civitai:4384@128713', width: 512, height: 512, outputType: 'base64Data' });

async function startDispatchingGateway(env: Record<string, string> = {}): Promise<number> {
  worker = await startFakeWorker({ maxConcurrency: 200 });
  const port = await freePort();
  server = startServerProcess({ PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', CIVITAI_BASE_URL: 'off', WORKER_URLS: worker.url, WORKER_HEALTH_INTERVAL_MS: '100', ...env });
  await waitUntilReady(port);
  // Wait until the gateway has seen the worker healthy.
  await until(async () => (await post(port, [task()])).status === 200, 15_000);
  return port;
}

async function post(port: number, tasks: unknown[]) {
  const response = await request(`http://127.0.0.1:${port}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(tasks) });
  return { status: response.statusCode, body: readTaskResponse(await response.body.text()), headers: response.headers };
}

describe('graceful drain', () => {
  it('stops being ready at once but keeps listening, refuses new work retryably, finishes what runs, exits 0', async () => {
    const port = await startDispatchingGateway();
    worker!.setBehaviour({ latencyMs: 1500 });
    const running = task();
    const inFlight = post(port, [running]);
    await until(() => worker?.stats.running() === 1);
    const exited = once(server!.child, 'exit');
    server!.child.kill('SIGTERM');
    await until(() => server?.output().includes('shutting down') ?? false);

    // A new connection is taken: the load balancer reads 503 on readiness, a new task gets a retryable refusal.
    const ready = await request(`http://127.0.0.1:${port}/health/ready`);
    expect(ready.statusCode).toBe(503);
    await ready.body.dump();
    const refused = await post(port, [task()]);
    expect(refused.status).toBe(503);
    expect(refused.body.errors[0]).toMatchObject({ code: 'shuttingDown', retryable: true, retryAfter: 1 });
    expect(refused.headers['connection']).toBe('close');

    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(answer.body.data[0]?.taskUUID).toBe(running.taskUUID);
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
  });

  it('answers work still running when the grace ends with shuttingDown, cancels its jobs, resets nothing', async () => {
    const port = await startDispatchingGateway({ DRAIN_GRACE_MS: '1500' });
    worker!.setBehaviour({ latencyMs: 15_000 });
    const tasks = Array.from({ length: 20 }, task);
    const answers = tasks.map((sent) => post(port, [sent]));
    const socket = await openTaskSocket(`ws://127.0.0.1:${port}/v1`);
    await socket.authenticate('any-key');
    const overSocket = task();
    socket.send([overSocket]);
    await until(() => worker?.stats.running() === 21);
    const exited = once(server!.child, 'exit');
    const started = Date.now();
    server!.child.kill('SIGTERM');

    const settled = await Promise.all(answers);
    expect(Date.now() - started).toBeLessThan(8000);
    for (const [index, answer] of settled.entries()) {
      expect(answer.status).toBe(503);
      expect(answer.body.errors).toEqual([expect.objectContaining({ code: 'shuttingDown', retryable: true, taskUUID: tasks[index]!.taskUUID })]);
    }
    expect(await socket.next((frame) => frame.errors !== undefined)).toMatchObject({ errors: [{ code: 'shuttingDown', taskUUID: overSocket.taskUUID }] });
    // Every worker job is told to stop: the GPUs do not go on for nobody.
    await until(() => worker!.stats.cancels().length >= 21, 5000);
    expect(new Set(worker!.stats.cancels().map((jobId) => jobId.slice(0, 36)))).toEqual(new Set([...tasks, overSocket].map((sent) => sent.taskUUID)));
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
  });
});
