import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeWorker, type FakeWorker } from './support/fake-worker.js';
import { startGateway, until, type TestGateway } from './support/gateway.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver.js';
import { openTaskSocket } from './support/task-socket-client.js';

/**
 * OpenTelemetry traces (src/tracing.ts) of a whole gateway, exported to a real OTLP/HTTP receiver on
 * loopback, with a real fake worker that records the headers of its job requests. Without an OTLP endpoint
 * configured, nothing of OpenTelemetry may even be loaded: that case runs first, while this test file's
 * process (vitest gives each file its own) has loaded none of it.
 */

const SD15 = 'civitai:4384@128713';
const SERVER = 2;
const CLIENT = 3;
const ERROR = 2;
const traceparentFormat = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

function task(extra: Record<string, unknown> = {}) {
  return { taskType: 'imageInference', taskUUID: randomUUID(), model: SD15, positivePrompt: 'a lighthouse', width: 512, height: 512, steps: 4, ...extra };
}

async function post(gateway: TestGateway, body: unknown, headers: Record<string, string> = {}): Promise<number> {
  const response = await gateway.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify(body) });
  return response.statusCode;
}

/** The packages of OpenTelemetry loaded into this process (all are CommonJS under Node, so in require's cache). */
function loadedOpenTelemetry(): string[] {
  const packages = Object.keys(createRequire(import.meta.url).cache).flatMap((path) => /node_modules[\\/](@opentelemetry[\\/][^\\/]+|@fastify[\\/]otel)[\\/]/.exec(path)?.[1] ?? []);
  return [...new Set(packages)];
}

async function healthyGateway(env: Record<string, string>): Promise<TestGateway> {
  const gateway = await startGateway({ WORKER_HEALTH_INTERVAL_MS: '100', ...env });
  await until(() => gateway.dispatch.pool?.workers.every((entry) => entry.healthy) ?? false);
  return gateway;
}

describe('without an OTLP endpoint', () => {
  let worker: FakeWorker;
  let gateway: TestGateway;
  beforeAll(async () => {
    worker = await startFakeWorker();
    gateway = await healthyGateway({ WORKER_URLS: worker.url, OTEL_SERVICE_NAME: 'not-enough-to-trace' });
  });
  afterAll(async () => {
    await gateway?.close();
    await worker?.close();
  });

  it('loads nothing of OpenTelemetry, registers no plugin, and sends workers no trace context', async () => {
    const clientTraceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    expect(await post(gateway, [task()], { traceparent: clientTraceparent })).toBe(200);
    expect(worker.receivedJobHeaders).toHaveLength(1);
    expect(worker.receivedJobHeaders[0]).not.toHaveProperty('traceparent');
    expect(worker.receivedJobHeaders[0]).not.toHaveProperty('tracestate');
    expect(gateway.app.hasRequestDecorator('opentelemetry')).toBe(false);
    // Nothing of the SDK, the exporter or the instrumentation. The API alone (a no-op facade until an SDK
    // registers) may be there: prom-client, behind /metrics, requires it for exemplars.
    expect(loadedOpenTelemetry().filter((name) => name !== '@opentelemetry/api')).toEqual([]);
  });
});

describe('with an OTLP endpoint', () => {
  let receiver: OtlpReceiver;
  let worker: FakeWorker;
  let gateway: TestGateway;
  let spans: ReceivedSpan[];
  const plain = task();
  const continued = task();
  const rejected = task();
  const overSocket = task();
  const client = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' };

  beforeAll(async () => {
    [receiver, worker] = await Promise.all([startOtlpReceiver(), startFakeWorker()]);
    gateway = await healthyGateway({ WORKER_URLS: worker.url, OTEL_EXPORTER_OTLP_ENDPOINT: `${receiver.url}/`, OTEL_SERVICE_NAME: 'clipgate-under-test' });
    expect(await post(gateway, [plain])).toBe(200);
    expect(await post(gateway, [continued], { traceparent: `00-${client.traceId}-${client.spanId}-01`, tracestate: 'vendor=opaque' })).toBe(200);
    worker.setBehaviour({ errorEvent: { code: 'invalidJob', message: 'The worker does not like this job.', retryable: false } });
    expect(await post(gateway, [rejected])).not.toBe(200);
    worker.setBehaviour({ errorEvent: undefined });
    expect((await gateway.app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    await gateway.app.listen({ port: 0, host: '127.0.0.1' });
    const socket = await openTaskSocket(`ws://127.0.0.1:${(gateway.app.server.address() as AddressInfo).port}/v1`);
    await socket.authenticate('any-key-for-an-open-gateway');
    socket.send([overSocket]);
    expect(await socket.next((frame) => frame.data !== undefined)).toMatchObject({ data: [{ taskUUID: overSocket.taskUUID }] });
    socket.close();
    await socket.closed;
    // The batch goes out every 5 s; closing the gateway sends what is left, so every span is there at once.
    await gateway.close();
    expect(receiver.requests()).toBeGreaterThan(0);
    spans = receiver.spans();
  });
  afterAll(async () => {
    await Promise.all([receiver?.close(), worker?.close()]);
  });

  const byId = () => new Map(spans.map((span) => [span.spanId, span]));
  function dispatchOf(taskUUID: string): ReceivedSpan {
    const found = spans.filter((span) => span.attributes['clipgate.task.uuid'] === taskUUID);
    expect(found).toHaveLength(1);
    return found[0]!;
  }
  function attemptsOf(dispatch: ReceivedSpan): ReceivedSpan[] {
    return spans.filter((span) => span.parentSpanId === dispatch.spanId);
  }
  /** The span's ancestors, nearest first, as far as they were exported. */
  function ancestorsOf(span: ReceivedSpan): ReceivedSpan[] {
    const spansById = byId();
    const chain: ReceivedSpan[] = [];
    for (let parent = spansById.get(span.parentSpanId); parent; parent = spansById.get(parent.parentSpanId)) chain.push(parent);
    return chain;
  }
  function jobHeadersOf(taskUUID: string) {
    const index = worker.receivedJobs.findIndex((job) => job.jobId === `${taskUUID}.1`);
    expect(index).toBeGreaterThanOrEqual(0);
    return worker.receivedJobHeaders[index]!;
  }

  it('exports the spans as the service OTEL_SERVICE_NAME names, and none of the health probe', () => {
    expect(spans.length).toBeGreaterThan(0);
    expect(new Set(spans.map((span) => span.resource['service.name']))).toEqual(new Set(['clipgate-under-test']));
    expect(spans.filter((span) => String(span.attributes['url.path'] ?? '').startsWith('/health'))).toEqual([]);
  });

  it("gives a request a server span, its task's dispatch a child span and the attempt a client span, all of one trace", () => {
    const dispatch = dispatchOf(plain.taskUUID);
    expect(dispatch).toMatchObject({
      name: 'dispatch imageInference',
      attributes: { 'clipgate.task.type': 'imageInference', 'clipgate.model.air': SD15, 'clipgate.task.outcome': 'success' },
    });
    expect(dispatch.statusCode).not.toBe(ERROR);
    const request = ancestorsOf(dispatch).at(-1);
    expect(request).toMatchObject({ name: 'POST /v1/tasks', kind: SERVER, parentSpanId: '', traceId: dispatch.traceId, attributes: { 'http.route': '/v1/tasks', 'http.response.status_code': 200 } });
    expect(request?.attributes['clipgate.request.id']).toEqual(expect.any(String));

    const attempts = attemptsOf(dispatch);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({
      name: 'POST /v1/jobs',
      kind: CLIENT,
      traceId: dispatch.traceId,
      attributes: { 'clipgate.worker.url': worker.url, 'url.full': `${worker.url}/v1/jobs`, 'clipgate.job.id': `${plain.taskUUID}.1`, 'clipgate.job.attempt': 1, 'clipgate.job.outcome': 'result' },
    });
  });

  it("sends the attempt's trace context to the worker as a W3C traceparent", () => {
    const [attempt] = attemptsOf(dispatchOf(plain.taskUUID));
    const headers = jobHeadersOf(plain.taskUUID);
    expect(headers['traceparent']).toMatch(traceparentFormat);
    expect(headers['traceparent']).toBe(`00-${attempt?.traceId}-${attempt?.spanId}-01`);
  });

  it('continues the trace of a client that sends a traceparent, and passes its tracestate on', () => {
    const dispatch = dispatchOf(continued.taskUUID);
    expect(dispatch.traceId).toBe(client.traceId);
    const request = ancestorsOf(dispatch).at(-1);
    expect(request).toMatchObject({ name: 'POST /v1/tasks', kind: SERVER, traceId: client.traceId, parentSpanId: client.spanId });
    const headers = jobHeadersOf(continued.taskUUID);
    expect(traceparentFormat.exec(String(headers['traceparent']))?.[1]).toBe(client.traceId);
    expect(headers['tracestate']).toBe('vendor=opaque');
  });

  it('marks a dispatch that failed, and its attempt, as errors with the reason', () => {
    const dispatch = dispatchOf(rejected.taskUUID);
    expect(dispatch).toMatchObject({ statusCode: ERROR, attributes: { 'clipgate.task.outcome': 'workerRejectedTask', 'error.type': 'workerRejectedTask' } });
    const [attempt] = attemptsOf(dispatch);
    expect(attempt).toMatchObject({ statusCode: ERROR, attributes: { 'clipgate.job.outcome': 'rejected', 'error.type': 'rejected' } });
    // Each request its own trace.
    expect(new Set([plain, continued, rejected].map((each) => dispatchOf(each.taskUUID).traceId)).size).toBe(3);
  });

  it("traces a WebSocket task from its dispatch (the socket's upgrade request is not traced), and passes it to the worker", () => {
    const dispatch = dispatchOf(overSocket.taskUUID);
    expect(dispatch.attributes['clipgate.task.outcome']).toBe('success');
    expect(dispatch.parentSpanId).toBe('');
    expect(spans.filter((span) => span.kind === SERVER && span.attributes['http.request.method'] === 'GET')).toEqual([]);
    const [attempt] = attemptsOf(dispatch);
    expect(jobHeadersOf(overSocket.taskUUID)['traceparent']).toBe(`00-${dispatch.traceId}-${attempt?.spanId}-01`);
  });
});
