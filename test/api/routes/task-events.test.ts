import { describe, expect, it, onTestFinished } from 'vitest';
import { request } from 'undici';
import type { Dispatcher } from '../../../src/contracts/dispatcher.js';
import { authorized, buildTestApp, createEchoDispatcher, imageTask } from '../../helper.js';

interface SseEvent {
  readonly id?: string;
  readonly event: string;
  readonly data: Record<string, unknown>;
}

function parseEvents(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.includes('event: '))
    .map((block) => {
      const field = (name: string) => block.split('\n').find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2);
      const id = field('id');
      return { ...(id !== undefined && { id }), event: field('event') ?? '', data: JSON.parse(field('data') ?? '{}') as Record<string, unknown> };
    });
}

async function appWithHeldJobs() {
  let release: () => void = () => undefined;
  const hold = new Promise<void>((resolve) => (release = resolve));
  onTestFinished(() => release());
  const echo = createEchoDispatcher();
  const dispatcher: Dispatcher = {
    async dispatch(task, context) {
      context.onProgress?.(1, 2);
      await hold;
      context.onProgress?.(2, 2);
      return echo.dispatch(task, context);
    },
  };
  const app = await buildTestApp({ dispatcher });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, base, release: () => release() };
}

async function readStream(url: string, headers: Record<string, string> = {}) {
  const response = await request(url, { headers: { authorization: authorized.authorization, ...headers } });
  return { status: response.statusCode, type: response.headers['content-type'], text: await response.body.text() };
}

describe('GET /v1/tasks/{taskUUID}/events', () => {
  it('streams an async task: queued, started, progress, each result, done; Last-Event-ID resumes after an event', async () => {
    const { app, base, release } = await appWithHeldJobs();
    const task = imageTask({ deliveryMethod: 'async', numberResults: 2 });
    await app.inject({ method: 'POST', url: '/v1/tasks', headers: authorized, payload: JSON.stringify([task]) });
    const streamed = readStream(`${base}/v1/tasks/${String(task['taskUUID'])}/events`);
    await new Promise((resolve) => setTimeout(resolve, 400));
    release();
    const { status, type, text } = await streamed;
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/event-stream/);
    const events = parseEvents(text);
    expect(events.map((event) => event.event)).toEqual(['queued', 'started', 'progress', 'progress', 'result', 'result', 'done']);
    expect(events[2]?.data).toMatchObject({ step: 1, steps: 2 });
    expect(events.filter((event) => event.event === 'result').map((event) => event.data['status'])).toEqual(['success', 'success']);
    expect(events.at(-1)?.data).toMatchObject({ taskUUID: task['taskUUID'], state: 'success' });
    const started = events.find((event) => event.event === 'started');
    const resumed = parseEvents((await readStream(`${base}/v1/tasks/${String(task['taskUUID'])}/events`, { 'last-event-id': started!.id! })).text);
    expect(resumed.map((event) => event.event)).toEqual(['progress', 'progress', 'result', 'result', 'done']);
  });

  it('ends a sync task\'s stream with its results and done', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const task = imageTask();
    await app.inject({ method: 'POST', url: '/v1/tasks', headers: authorized, payload: JSON.stringify([task]) });
    const events = parseEvents((await readStream(`${base}/v1/tasks/${String(task['taskUUID'])}/events`)).text);
    expect(events.map((event) => event.event)).toEqual(['result', 'done']);
  });

  it('answers taskNotFound (404) for a task this key never sent, before any stream', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const answer = await readStream(`${base}/v1/tasks/${String(imageTask()['taskUUID'])}/events`);
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.text)).toMatchObject({ errors: [{ code: 'taskNotFound' }] });
  });
});
