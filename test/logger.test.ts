import { describe, expect, it } from 'vitest';
import { authorized, buildTestApp, imageTask, postTasks, TEST_API_KEY, testConfig } from './helper.js';

async function logLines(level: 'info' | 'debug', send: (app: Awaited<ReturnType<typeof buildTestApp>>) => Promise<unknown>) {
  const lines: string[] = [];
  const app = await buildTestApp({ config: testConfig({ logLevel: level }), logStream: { write: (line: string) => { lines.push(line); } } });
  await send(app);
  return { text: lines.join(''), entries: lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

describe('request logging', () => {
  it('writes one line per request at info, with its request id, status and time, and no credentials', async () => {
    const { text, entries } = await logLines('info', async (app) => {
      await postTasks(app, [imageTask()], { ...authorized, 'x-request-id': 'trace-log-1' });
      await postTasks(app, [imageTask()], { authorization: 'Bearer wrong-key-0000000000', 'content-type': 'application/json' });
      await app.inject({ method: 'GET', url: '/health/ready' });
    });
    expect(text).not.toContain(TEST_API_KEY);
    expect(text).not.toContain('wrong-key-0000000000');
    const completed = entries.filter((entry) => entry['msg'] === 'request completed');
    expect(completed).toHaveLength(2);
    expect(completed[0]).toMatchObject({ requestId: 'trace-log-1', method: 'POST', url: '/v1/tasks', statusCode: 503 });
    expect(typeof completed[0]?.['responseTime']).toBe('number');
    expect(completed[1]).toMatchObject({ statusCode: 401 });
    expect(entries.some((entry) => entry['msg'] === 'incoming request')).toBe(false);
  });

  it('logs incoming requests with their headers at debug, the Authorization header redacted', async () => {
    const { text, entries } = await logLines('debug', async (app) => {
      await postTasks(app, [imageTask()], { ...authorized, 'x-request-id': 'trace-log-2' });
    });
    expect(text).not.toContain(TEST_API_KEY);
    const incoming = entries.find((entry) => entry['msg'] === 'incoming request');
    expect(incoming).toMatchObject({ requestId: 'trace-log-2', req: { headers: { authorization: '[redacted]' } } });
  });
});
