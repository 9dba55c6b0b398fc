import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, type RedisConnection } from '../../src/cache/redis-connection.js';
import { buildTestApp, createEchoDispatcher, imageTask, readTaskResponse, testConfig, TEST_API_KEY } from '../helper.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';

const OTHER_KEY = 'other-key-0123456789abcdef';
const config = () => testConfig({ apiKeys: [TEST_API_KEY, OTHER_KEY], rateLimitPerMinute: 3 });

function post(app: Awaited<ReturnType<typeof buildTestApp>>, key: string, inBody = false) {
  const tasks = inBody ? [{ taskType: 'authentication', apiKey: key }, imageTask({ outputType: 'URL' })] : [imageTask({ outputType: 'URL' })];
  return app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json', ...(!inBody && { authorization: `Bearer ${key}` }) }, payload: JSON.stringify(tasks) });
}

describe('rate limits per API key', () => {
  it('count a key, say where it stands in RateLimit-* headers, and answer rateLimitExceeded (429) with Retry-After past the limit', async () => {
    const app = await buildTestApp({ config: config(), dispatcher: createEchoDispatcher() });
    const answers = [await post(app, TEST_API_KEY), await post(app, TEST_API_KEY), await post(app, TEST_API_KEY)];
    expect(answers.map((answer) => answer.statusCode)).toEqual([200, 200, 200]);
    expect(answers.map((answer) => answer.headers['ratelimit-remaining'])).toEqual(['2', '1', '0']);
    expect(answers[0]!.headers['ratelimit-limit']).toBe('3');
    const refused = await post(app, TEST_API_KEY);
    expect(refused.statusCode).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(refused.headers['ratelimit-remaining']).toBe('0');
    const body = readTaskResponse(refused.body);
    expect(body.errors).toEqual([expect.objectContaining({ code: 'rateLimitExceeded', retryable: true })]);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'rateLimitExceeded' } });
    // Another key has its own count; probes are never limited.
    expect((await post(app, OTHER_KEY)).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(200);
  });

  it('count a key sent in an authentication task together with the same key sent as a bearer', async () => {
    const app = await buildTestApp({ config: config(), dispatcher: createEchoDispatcher() });
    await post(app, TEST_API_KEY);
    await post(app, TEST_API_KEY, true);
    await post(app, TEST_API_KEY);
    expect((await post(app, TEST_API_KEY, true)).statusCode).toBe(429);
  });
});

describe('rate limits with Redis', () => {
  let redis: RedisServer;
  let connection: RedisConnection;
  beforeAll(async () => {
    redis = await startRedisServer();
    connection = connectRedis(redis.url, { info: () => undefined, warn: () => undefined });
    for (let waited = 0; !connection.isUp(); waited += 20) {
      if (waited > 5000) throw new Error('Redis did not come up');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
  afterAll(async () => {
    await connection.close();
    await redis.stop();
  });

  it('are one count for a key across replicas', async () => {
    const [one, two] = [await buildTestApp({ config: config(), dispatcher: createEchoDispatcher(), rateLimitRedis: connection.client }), await buildTestApp({ config: config(), dispatcher: createEchoDispatcher(), rateLimitRedis: connection.client })];
    expect([(await post(one, TEST_API_KEY)).statusCode, (await post(two, TEST_API_KEY)).statusCode, (await post(one, TEST_API_KEY)).statusCode]).toEqual([200, 200, 200]);
    expect((await post(two, TEST_API_KEY)).statusCode).toBe(429);
  });
});
