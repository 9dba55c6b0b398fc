import { describe, expect, it } from 'vitest';
import { authorized, buildTestApp, createEchoDispatcher, imageTask, testConfig } from '../helper.js';

/** Blocks this process's event loop, as a replica drowning in work would. */
function blockEventLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // spin
  }
}

describe('load shedding', () => {
  it('refuses requests with overloaded (503, Retry-After) while the event loop lags, keeps answering probes, and recovers', async () => {
    const app = await buildTestApp({ config: testConfig({ shedding: { maxEventLoopDelayMs: 50, maxHeapUsedBytes: 0 } }), dispatcher: createEchoDispatcher() });
    const send = () => app.inject({ method: 'POST', url: '/v1/tasks', headers: authorized, payload: JSON.stringify([imageTask({ outputType: 'URL' })]) });
    expect((await send()).statusCode).toBe(200);
    // Busy for a second, yielding only for moments: every sample of the delay histogram (taken every 250 ms)
    // sees the loop late, as under real overload.
    for (let slice = 0; slice < 8; slice++) {
      blockEventLoop(150);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const shed = await send();
    expect(shed.statusCode).toBe(503);
    expect(shed.headers['retry-after']).toBe('1');
    expect(JSON.parse(shed.body)).toMatchObject({ errors: [{ code: 'overloaded', retryable: true }], error: { code: 'overloaded' } });
    expect((await app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    // The scraper too: an overloaded replica is when its metrics matter.
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
    // Calm again after a sample or two.
    await expect.poll(async () => (await send()).statusCode, { timeout: 3000, interval: 200 }).toBe(200);
  });

  it('is off when both limits are 0', async () => {
    const app = await buildTestApp({ config: testConfig({ shedding: { maxEventLoopDelayMs: 0, maxHeapUsedBytes: 0 } }), dispatcher: createEchoDispatcher() });
    blockEventLoop(600);
    expect((await app.inject({ method: 'POST', url: '/v1/tasks', headers: authorized, payload: JSON.stringify([imageTask({ outputType: 'URL' })]) })).statusCode).toBe(200);
  });
});
