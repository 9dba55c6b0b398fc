import { once } from 'node:events';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { buildTestApp, createEchoDispatcher, imageTask, TEST_API_KEY } from './helper.js';
import { freePort } from './support/free-port.js';
import { startServerProcess, waitUntilReady, type ServerProcess } from './support/server-process.js';

const children: ServerProcess[] = [];

afterEach(async () => {
  await Promise.all(children.splice(0).map((child) => child.stop()));
});

function startServer(env: Record<string, string>): ServerProcess {
  const server = startServerProcess({ CIVITAI_BASE_URL: 'off', ...env });
  children.push(server);
  return server;
}

describe('a listening gateway', () => {
  it('serves tasks over real HTTP, with keep-alive, request ids and exact seeds', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    const payload = JSON.stringify([imageTask({ numberResults: 1 }), imageTask({ model: 'runware:101@1', embeddings: [{ model: 'civitai:7808@9208' }] })]).replace(
      '"width"',
      '"seed":12345678901234567890,"width"',
    );
    const response = await request(`${address}/v1/tasks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json', 'x-request-id': 'listen-1' },
      body: payload,
    });
    const text = await response.body.text();
    expect(response.statusCode).toBe(200);
    expect(response.headers['x-request-id']).toBe('listen-1');
    expect(text).toContain('"seed":12345678901234567890}');
    const body = JSON.parse(text) as { data: unknown[]; errors: { code: string }[] };
    expect(body.data).toHaveLength(1);
    expect(body.errors.map((error) => error.code)).toEqual(['unsupportedEmbeddingArchitecture']);
  });

  it('refuses an oversized body over a real socket with 413', async () => {
    const app = await buildTestApp();
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    const response = await request(`${address}/v1/tasks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
      body: `[${JSON.stringify(imageTask({ positivePrompt: 'x'.repeat(2999) }))}${`,${JSON.stringify(imageTask())}`.repeat(12_000)}]`,
    });
    const body = (await response.body.json()) as { errors: { code: string }[] };
    expect(response.statusCode).toBe(413);
    expect(body.errors[0]?.code).toBe('payloadTooLarge');
  });
});

describe('the server process', () => {
  it('starts on its defaults, answers, and drains on SIGTERM', async () => {
    const port = await freePort();
    const server = startServer({ PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info' });
    await waitUntilReady(port);
    expect(server.output()).toContain('API_KEYS is not set');

    const response = await request(`http://127.0.0.1:${port}/v1/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([imageTask({ embeddings: [{ model: 'civitai:7808@9208' }] })]),
    });
    const body = (await response.body.json()) as { errors: { code: string }[] };
    expect(response.statusCode).toBe(503);
    expect(body.errors[0]?.code).toBe('noAvailableWorker');

    server.child.kill('SIGTERM');
    const [code] = (await once(server.child, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(server.output()).toContain('shutting down');
  });

  it('stops at start-up with one message per bad variable', async () => {
    const server = startServer({ PORT: 'abc', MAX_EMBEDDINGS_PER_TASK: '-2' });
    const [code] = (await once(server.child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(server.output()).toMatch(/PORT: .*"abc"/);
    expect(server.output()).toMatch(/MAX_EMBEDDINGS_PER_TASK: .*"-2"/);
  });

  it('refuses to start in production without API keys, and with an unreadable catalogue', async () => {
    const production = startServer({ NODE_ENV: 'production' });
    expect((await once(production.child, 'exit'))[0]).toBe(1);
    expect(production.output()).toContain('API_KEYS: required when NODE_ENV=production');

    const catalogue = startServer({ MODEL_CATALOG_PATH: '/nonexistent/models.json' });
    expect((await once(catalogue.child, 'exit'))[0]).toBe(1);
    expect(catalogue.output()).toContain('cannot read /nonexistent/models.json');
  });
});
