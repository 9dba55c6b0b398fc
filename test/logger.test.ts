import { describe, expect, it } from 'vitest';
import { authorized, buildTestApp, imageTask, postTasks, TEST_API_KEY, testConfig } from './helper.js';

describe('request logging', () => {
  it('logs each request with its request id and never the Authorization header', async () => {
    const lines: string[] = [];
    const app = await buildTestApp({ config: testConfig({ logLevel: 'info' }), logStream: { write: (line: string) => void lines.push(line) } });
    await postTasks(app, [imageTask()], { ...authorized, 'x-request-id': 'trace-log-1' });
    await postTasks(app, [imageTask()], { authorization: 'Bearer wrong-key-0000000000', 'content-type': 'application/json' });

    const text = lines.join('');
    expect(text).not.toContain(TEST_API_KEY);
    expect(text).not.toContain('wrong-key-0000000000');
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const incoming = entries.filter((entry) => entry['msg'] === 'incoming request');
    expect(incoming).toHaveLength(2);
    expect(incoming[0]).toMatchObject({ requestId: 'trace-log-1', req: { headers: { authorization: '[redacted]' } } });
    expect(entries.filter((entry) => entry['requestId'] === 'trace-log-1').length).toBeGreaterThanOrEqual(2);
  });
});
