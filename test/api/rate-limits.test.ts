import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, type RedisConnection } from '../../src/cache/redis-connection.js';
import { buildTestApp, createEchoDispatcher, imageTask, readTaskResponse, testConfig, TEST_API_KEY } from '../helper.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { openTaskSocket } from '../support/task-socket-client.js';

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
    // Nor the scraper, however often it comes.
    for (let scrape = 0; scrape < 5; scrape++) expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
  });

  it('count a key sent in an authentication task together with the same key sent as a bearer', async () => {
    const app = await buildTestApp({ config: config(), dispatcher: createEchoDispatcher() });
    await post(app, TEST_API_KEY);
    await post(app, TEST_API_KEY, true);
    await post(app, TEST_API_KEY);
    expect((await post(app, TEST_API_KEY, true)).statusCode).toBe(429);
  });
});

describe('rate limits over WebSocket', () => {
  it('count each frame of tasks with the key\'s REST requests, refuse each task of a frame past the limit, and never count pings', async () => {
    const app = await buildTestApp({ config: config(), dispatcher: createEchoDispatcher() });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const address = app.server.address();
      const client = await openTaskSocket(`ws://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/v1`);
      await client.authenticate(TEST_API_KEY);
      for (let ping = 0; ping < 5; ping++) {
        client.send([{ taskType: 'ping', ping: true }]);
        expect(await client.next()).toEqual({ data: [{ taskType: 'ping', pong: true }] });
      }
      // One REST request and two frames: the key's three.
      expect((await post(app, TEST_API_KEY)).statusCode).toBe(200);
      for (let frame = 0; frame < 2; frame++) {
        const sent = imageTask({ outputType: 'URL' });
        client.send([sent]);
        expect((await client.next((answer) => answer.data?.[0]?.['taskUUID'] === sent['taskUUID'])).data).toHaveLength(1);
      }
      const [first, second] = [imageTask({ outputType: 'URL' }), imageTask({ outputType: 'URL' })];
      client.send([first, second]);
      const refusals = [await client.next((answer) => answer.errors !== undefined), await client.next((answer) => answer.errors !== undefined)].flatMap((answer) => answer.errors ?? []);
      expect(refusals).toEqual(
        [first, second].map((task) => expect.objectContaining({ code: 'rateLimitExceeded', taskUUID: task['taskUUID'], taskType: 'imageInference', retryable: true, retryAfter: expect.any(Number) })),
      );
      // The socket stays up and answers pings; REST with the same key is over the limit too.
      client.send([{ taskType: 'ping', ping: true }]);
      expect(await client.next((answer) => answer.data?.[0]?.['taskType'] === 'ping')).toEqual({ data: [{ taskType: 'ping', pong: true }] });
      expect((await post(app, TEST_API_KEY)).statusCode).toBe(429);
      // Another key's socket has its own count.
      expect((await post(app, OTHER_KEY)).statusCode).toBe(200);
      client.close();
    } finally {
      await app.close();
    }
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
