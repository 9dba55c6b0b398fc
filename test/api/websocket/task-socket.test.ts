import { randomUUID } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeWorker, type FakeWorker, type FakeWorkerOptions } from '../../support/fake-worker.js';
import { startGateway, until, type TestGateway } from '../../support/gateway.js';
import { framesOf, openTaskSocket, type TaskSocketClient } from '../../support/task-socket-client.js';

/** The WebSocket API on /v1, against a whole gateway listening on loopback and a fake GPU worker. */

const KEY = 'socket-test-key-0123456789';
const SD15 = 'civitai:4384@128713';

const open: { close(): Promise<void> | void }[] = [];
afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close();
});

async function setUp(env: Record<string, string> = {}, workerOptions: FakeWorkerOptions = {}): Promise<{ gateway: TestGateway; worker: FakeWorker; url: string }> {
  const worker = await startFakeWorker(workerOptions);
  open.push(worker);
  const gateway = await startGateway({ API_KEYS: KEY, CIVITAI_BASE_URL: 'off', WORKER_URLS: worker.url, WORKER_HEALTH_INTERVAL_MS: '100', ...env });
  open.push(gateway);
  await gateway.app.listen({ port: 0, host: '127.0.0.1' });
  await until(() => gateway.dispatch.pool?.workers.every((candidate) => candidate.healthy) ?? false);
  const address = gateway.app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { gateway, worker, url: `ws://127.0.0.1:${port}/v1?sdk=js&version=1.3.2` };
}

async function connect(url: string): Promise<TaskSocketClient> {
  const client = await openTaskSocket(url);
  open.push(client);
  return client;
}

function task(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { taskType: 'imageInference', taskUUID: randomUUID(), positivePrompt: 'a lighthouse', model: SD15, width: 256, height: 256, ...overrides };
}

describe('authentication', () => {
  it('answers with a connectionSessionUUID, and a pong before and after', async () => {
    const { url } = await setUp();
    const client = await connect(url);
    client.send([{ taskType: 'ping', ping: true }]);
    expect(await client.next()).toEqual({ data: [{ taskType: 'ping', pong: true }] });
    const session = await client.authenticate(KEY);
    expect(session).toMatch(/^[0-9a-f-]{36}$/);
    client.send([{ taskType: 'ping', ping: true }]);
    expect(await client.next()).toEqual({ data: [{ taskType: 'ping', pong: true }] });
  });

  it('refuses a bad key with an error frame naming the authentication task, then closes', async () => {
    const { url } = await setUp();
    const client = await connect(url);
    client.send([{ taskType: 'authentication', apiKey: 'not-the-key-at-all-000' }]);
    const frame = await client.next();
    expect(frame).toEqual({ errors: [expect.objectContaining({ code: 'invalidApiKey', taskType: 'authentication', message: expect.any(String), retryable: false })] });
    expect(frame.errors?.[0]?.['taskUUID']).toBeUndefined();
    expect(await client.closed).toEqual({ code: 4401, reason: 'invalidApiKey' });
  });

  it('answers tasks sent before authentication with a clear error carrying their taskUUID', async () => {
    const { url, worker } = await setUp();
    const client = await connect(url);
    const early = task();
    client.send([early]);
    expect(await client.next()).toEqual({ errors: [expect.objectContaining({ code: 'missingApiKey', taskUUID: early['taskUUID'], message: expect.stringContaining('Authenticate first') })] });
    expect(worker.stats.jobs()).toBe(0);
    // The socket stays usable: authenticate, then the same task runs.
    await client.authenticate(KEY);
    client.send([early]);
    expect(await client.next()).toMatchObject({ data: [{ taskType: 'imageInference', taskUUID: early['taskUUID'] }] });
  });

  it('takes authentication and tasks in one frame', async () => {
    const { url } = await setUp();
    const client = await connect(url);
    const first = task();
    client.send([{ taskType: 'authentication', apiKey: KEY }, first]);
    const frames = await client.waitForFrames(2);
    expect(frames[0]?.data?.[0]).toMatchObject({ taskType: 'authentication', connectionSessionUUID: expect.any(String) });
    expect(frames[1]?.data?.[0]).toMatchObject({ taskUUID: first['taskUUID'] });
  });

  it('limits the sockets one key holds on a replica', async () => {
    const { url } = await setUp({ WS_MAX_SOCKETS_PER_KEY: '2' });
    const held = [await connect(url), await connect(url)];
    for (const client of held) await client.authenticate(KEY);
    const third = await connect(url);
    third.send([{ taskType: 'authentication', apiKey: KEY }]);
    expect(await third.next()).toEqual({ errors: [expect.objectContaining({ code: 'tooManyConnections', taskType: 'authentication', retryable: true })] });
    expect((await third.closed).code).toBe(4429);
    // A socket given back makes room.
    held[0]!.close();
    await held[0]!.closed;
    const fourth = await connect(url);
    await until(async () => {
      try {
        return typeof (await fourth.authenticate(KEY)) === 'string';
      } catch {
        return false;
      }
    });
  });
});

describe('answers', () => {
  it('sends one frame per image, each with its taskUUID and taskType, exact seeds included', async () => {
    const { url } = await setUp();
    const client = await connect(url);
    await client.authenticate(KEY);
    const sent = task({ numberResults: 3, outputType: 'base64Data' });
    client.send(JSON.stringify([sent]).replace('"width"', '"seed":18446744073709551614,"width"'));
    const frames = await client.waitForFrames(4);
    const images = framesOf(frames, sent['taskUUID'] as string);
    expect(images).toHaveLength(3);
    for (const frame of images) expect(frame.data).toEqual([expect.objectContaining({ taskType: 'imageInference', taskUUID: sent['taskUUID'], imageBase64Data: expect.any(String) })]);
    // 2^64 - 2, then + 1, then wrapped to 0: JSON numbers with every digit.
    expect(images.map((frame) => frame.data?.[0]?.['seed'])).toEqual([18446744073709551614n, 18446744073709551615n, 0]);
  });

  it('answers each failed task in a frame of its own, and the others run', async () => {
    const { url } = await setUp();
    const client = await connect(url);
    await client.authenticate(KEY);
    const bad = task({ width: 500, embeddings: [{ model: 'civitai:1@1' }] });
    const good = task();
    client.send([bad, good]);
    const failure = await client.next((frame) => frame.errors !== undefined);
    expect(failure.errors?.map((error) => [error['code'], error['taskUUID']])).toEqual([['invalidParameter', bad['taskUUID']], ['unknownModel', bad['taskUUID']]]);
    expect(await client.next((frame) => frame.data !== undefined)).toMatchObject({ data: [{ taskUUID: good['taskUUID'] }] });
  });

  it('puts warnings on the task’s first answer', async () => {
    const { url } = await setUp();
    const client = await connect(url);
    await client.authenticate(KEY);
    const sent = task({ outputFormat: 'PNG', outputQuality: 50, numberResults: 2 });
    client.send([sent]);
    const [first, second] = framesOf(await client.waitForFrames(3), sent['taskUUID'] as string);
    expect(first?.warnings).toEqual([expect.objectContaining({ code: 'parameterNotApplied', taskUUID: sent['taskUUID'] })]);
    expect(second?.warnings).toBeUndefined();
  });

  it('refuses a task already running on another open socket of the same key (conflictTaskUUID)', async () => {
    const { url, worker } = await setUp();
    worker.setBehaviour({ latencyMs: 1000 });
    const [one, two] = [await connect(url), await connect(url)];
    await one.authenticate(KEY);
    await two.authenticate(KEY);
    const shared = task();
    one.send([shared]);
    await until(() => worker.stats.accepted() > 0);
    two.send([shared]);
    expect(await two.next()).toEqual({ errors: [expect.objectContaining({ code: 'conflictTaskUUID', taskUUID: shared['taskUUID'], parameter: 'taskUUID' })] });
    expect(await one.next()).toMatchObject({ data: [{ taskUUID: shared['taskUUID'] }] });
    expect(worker.stats.jobs()).toBe(1);
  });

  it('runs a task sent again once its answers were delivered: a retry after a failure is a new run', async () => {
    const { url, worker } = await setUp();
    const client = await connect(url);
    await client.authenticate(KEY);
    const retried = task();
    worker.setBehaviour({ errorEvent: { code: 'internal', message: 'out of memory', retryable: false } });
    client.send([retried]);
    expect(await client.next()).toMatchObject({ errors: [{ code: 'workerRejectedTask', taskUUID: retried['taskUUID'] }] });
    worker.setBehaviour({ errorEvent: undefined });
    client.send([retried]);
    expect(await client.next()).toMatchObject({ data: [{ taskUUID: retried['taskUUID'] }] });
    expect(worker.stats.jobs()).toBe(2);
  });

  it('limits the tasks in flight on one socket', async () => {
    const { url, worker } = await setUp({ WS_MAX_TASKS_IN_FLIGHT: '2' });
    worker.setBehaviour({ latencyMs: 500 });
    const client = await connect(url);
    await client.authenticate(KEY);
    const tasks = [task(), task(), task()];
    client.send(tasks);
    const refused = await client.next((frame) => frame.errors !== undefined);
    expect(refused.errors).toEqual([expect.objectContaining({ code: 'tooManyTasksInFlight', taskUUID: tasks[2]!['taskUUID'], retryable: true })]);
    await client.waitForFrames(4);
    // Once they are done, there is room again.
    const later = task();
    client.send([later]);
    expect(await client.next((frame) => frame.data?.[0]?.['taskUUID'] === later['taskUUID'])).toBeTruthy();
  });
});

describe('sessions', () => {
  it('resumes a dropped session: what finished meanwhile arrives on the new socket, exactly once', async () => {
    const { url, worker } = await setUp();
    worker.setBehaviour({ latencyMs: 400 });
    const first = await connect(url);
    const session = await first.authenticate(KEY);
    const sent = task({ numberResults: 2 });
    first.send([sent]);
    await until(() => worker.stats.accepted() > 0);
    first.socket.terminate();
    await until(() => worker.stats.completed() > 0);
    const second = await connect(url);
    expect(await second.authenticate(KEY, session)).toBe(session);
    const frames = framesOf(await second.waitForFrames(3), sent['taskUUID'] as string);
    expect(frames).toHaveLength(2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(framesOf(second.frames, sent['taskUUID'] as string)).toHaveLength(2);
    expect(first.frames.filter((frame) => frame.data?.[0]?.['taskType'] === 'imageInference')).toHaveLength(0);
    // Nothing was cancelled: a dropped socket's tasks run on through the window.
    expect(worker.stats.cancels()).toEqual([]);
  });

  it('hands a task sent again from a new session the answers of the first run, without running it twice', async () => {
    const { url, worker } = await setUp();
    worker.setBehaviour({ latencyMs: 400 });
    const first = await connect(url);
    await first.authenticate(KEY);
    const sent = task();
    first.send([sent]);
    await until(() => worker.stats.accepted() > 0);
    first.socket.terminate();
    const second = await connect(url);
    await second.authenticate(KEY);
    second.send([sent]);
    expect(await second.next()).toMatchObject({ data: [{ taskUUID: sent['taskUUID'] }] });
    expect(worker.stats.jobs()).toBe(1);
  });

  it('does not resume another key’s session: a new session is opened instead', async () => {
    const other = 'another-socket-key-0123456789';
    const { url } = await setUp({ API_KEYS: `${KEY},${other}` });
    const first = await connect(url);
    const session = await first.authenticate(KEY);
    first.close();
    const intruder = await connect(url);
    expect(await intruder.authenticate(other, session)).not.toBe(session);
  });

  it('cancels a dropped session’s tasks once its window ends without a resume', async () => {
    const { url, worker } = await setUp({ WS_RESUME_WINDOW_SECONDS: '1' });
    worker.setBehaviour({ hangAfterAccept: true });
    const client = await connect(url);
    await client.authenticate(KEY);
    const sent = task();
    client.send([sent]);
    await until(() => worker.stats.accepted() > 0);
    client.socket.terminate();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(worker.stats.cancels()).toEqual([]);
    await until(() => worker.stats.cancels().length > 0, 5000);
    expect(worker.stats.cancels()).toEqual([`${sent['taskUUID']}.1`]);
  });
});

describe('limits and bad frames', () => {
  it('answers garbage with error frames and stays up: not JSON, not an array, empty, binary, too large', async () => {
    const { url } = await setUp({ BODY_LIMIT_BYTES: '4096' });
    const client = await connect(url);
    await client.authenticate(KEY);
    const garbage: [unknown, string][] = [
      ['{"taskType":', 'invalidJson'],
      ['{"taskType":"ping"}', 'invalidRequestBody'],
      ['[]', 'invalidRequestBody'],
      ['"hello"', 'invalidRequestBody'],
      [Buffer.from([0xde, 0xad, 0xbe, 0xef]), 'invalidRequestBody'],
      [JSON.stringify([task({ positivePrompt: 'x'.repeat(5000) })]), 'payloadTooLarge'],
      [`${'['.repeat(100_000)}${']'.repeat(100_000)}`.slice(0, 4000), 'invalidJson'],
    ];
    for (const [frame, code] of garbage) {
      client.send(frame);
      expect((await client.next()).errors?.[0]).toMatchObject({ code, retryable: false });
    }
    client.send([{ taskType: 'ping', ping: true }]);
    expect(await client.next()).toEqual({ data: [{ taskType: 'ping', pong: true }] });
  });

  it('closes with 1009 a frame beyond twice the body limit', async () => {
    const { url } = await setUp({ BODY_LIMIT_BYTES: '4096' });
    const client = await connect(url);
    client.send('x'.repeat(9000));
    expect((await client.closed).code).toBe(1009);
  });

  it('answers 1,000 pings with 1,000 pongs, in order', async () => {
    const { url } = await setUp();
    const client = await connect(url);
    await client.authenticate(KEY);
    for (let index = 0; index < 1000; index++) client.send([{ taskType: 'ping', ping: true, taskUUID: `ping-${index}` }]);
    const frames = await client.waitForFrames(1001, 20_000);
    expect(frames.slice(1).map((frame) => frame.data?.[0]?.['taskUUID'])).toEqual(Array.from({ length: 1000 }, (_, index) => `ping-${index}`));
  });

  it('closes an idle socket', async () => {
    const { url } = await setUp({ WS_IDLE_TIMEOUT_MS: '300' });
    const client = await connect(url);
    expect(await client.closed).toEqual({ code: 4408, reason: 'no message for 0 s' });
  });

  it('cuts off a reader that does not read, and keeps its answers for a resume', async () => {
    const { url, worker } = await setUp({ WS_MAX_BUFFERED_BYTES: '1048576', WS_SLOW_READER_TIMEOUT_MS: '3000' });
    // 40 answers of about 2.7 MB each: far more than loopback's socket buffers (up to 32 MiB here) and the gateway's 1 MiB.
    worker.setBehaviour({ pngBytes: 2_000_000 });
    const reader = await connect(url);
    const session = await reader.authenticate(KEY);
    // Stop reading: the kernel buffers fill, then the gateway's send buffer.
    reader.socket.pause();
    // 1024² so that a 2.7 MB PNG is within what such an image can take (a smaller task's would be refused as oversized).
    const sent = Array.from({ length: 40 }, () => task({ width: 1024, height: 1024, outputType: 'base64Data', outputFormat: 'PNG' }));
    reader.send(sent);
    await until(() => worker.stats.completed() >= 40, 60_000);
    // Behind for longer than WS_SLOW_READER_TIMEOUT_MS: cut off.
    await new Promise((resolve) => setTimeout(resolve, 4000));
    reader.socket.resume();
    const closed = await reader.closed;
    expect(closed.code).toBe(1013);
    const received = reader.frames.filter((frame) => frame.data?.[0]?.['taskType'] === 'imageInference').length;
    // Whatever did not reach the slow reader is delivered, exactly once, when it comes back.
    const back = await connect(url);
    await back.authenticate(KEY, session);
    await back.waitForFrames(1 + (40 - received), 60_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const all = [...reader.frames, ...back.frames].flatMap((frame) => frame.data ?? []).filter((item) => item['taskType'] === 'imageInference');
    expect(all.map((item) => item['taskUUID']).sort()).toEqual(sent.map((item) => item['taskUUID']).sort());
    expect(received).toBeLessThan(40);
  }, 180_000);
});

describe('many sockets', () => {
  it('survives 500 sockets opened, used and dropped: every task answered exactly once on resume, memory back to its baseline', async () => {
    const { gateway, url, worker } = await setUp({ WS_RESUME_WINDOW_SECONDS: '5', WS_MAX_SOCKETS_PER_KEY: '1000' }, { maxConcurrency: 500 });
    worker.setBehaviour({ latencyMs: 200 });
    const collect = gcHandle();
    const baseline = heapAfterGc(collect);
    const sessions: { session: string; taskUUID: string }[] = [];
    for (let round = 0; round < 10; round++) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, async () => {
          const client = await openTaskSocket(url);
          const session = await client.authenticate(KEY);
          const sent = task();
          client.send([sent]);
          // Dropped mid-task, without a close frame.
          await new Promise((resolve) => setTimeout(resolve, 20));
          client.socket.terminate();
          return { session, taskUUID: sent['taskUUID'] as string };
        }),
      );
      sessions.push(...batch);
    }
    await until(() => gateway.sessions.attachedCount === 0 && gateway.sessions.runningCount === 0, 30_000);
    expect(worker.stats.completed()).toBe(500);
    // Every session comes back for what finished while it was away: exactly one answer each.
    for (let start = 0; start < sessions.length; start += 50) {
      await Promise.all(
        sessions.slice(start, start + 50).map(async ({ session, taskUUID }) => {
          const client = await openTaskSocket(url);
          expect(await client.authenticate(KEY, session)).toBe(session);
          await client.next((frame) => frame.data?.[0]?.['taskUUID'] === taskUUID);
          await new Promise((resolve) => setTimeout(resolve, 50));
          expect(framesOf(client.frames, taskUUID)).toHaveLength(1);
          client.socket.terminate();
        }),
      );
    }
    expect(worker.stats.jobs()).toBe(500);
    // Once the windows have passed, what the 1,000 sockets left behind is gone.
    await until(() => gateway.sessions.attachedCount === 0, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 6000));
    expect(heapAfterGc(collect) - baseline).toBeLessThan(16 * 1024 * 1024);
  }, 120_000);
});

/** The engine's collector, for a heap measured without the garbage of the moment. */
function gcHandle(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function heapAfterGc(collect: () => void): number {
  collect();
  collect();
  return process.memoryUsage().heapUsed;
}
