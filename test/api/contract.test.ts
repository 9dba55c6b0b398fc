import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { authorized, buildTestApp, createEchoDispatcher, imageTask, readTaskResponse, testConfig } from '../helper.js';

describe('the HTTP contract', () => {
  it('answers a known path with a wrong method 405, with Allow', async () => {
    const app = await buildTestApp();
    const wrong = await app.inject({ method: 'GET', url: '/v1/tasks', headers: authorized });
    expect(wrong.statusCode).toBe(405);
    expect(wrong.headers['allow']).toBe('POST');
    expect(readTaskResponse(wrong.body).errors[0]).toMatchObject({ code: 'methodNotAllowed', allowed: ['POST'] });
    const models = await app.inject({ method: 'DELETE', url: '/v1/models/civitai:1@1', headers: { authorization: authorized.authorization } });
    expect(models.statusCode).toBe(405);
    expect(models.headers['allow']).toBe('GET, HEAD');
    expect((await app.inject({ method: 'GET', url: '/v1/nothing-here' })).statusCode).toBe(404);
  });

  it.each([
    ['gzip', gzipSync],
    ['deflate', deflateSync],
    ['br', brotliCompressSync],
  ] as const)('decodes a %s body', async (coding, compress) => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    const task = imageTask();
    const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { ...authorized, 'content-encoding': coding }, payload: compress(Buffer.from(JSON.stringify([task]))) });
    expect(response.statusCode, response.body).toBe(200);
    expect(readTaskResponse(response.body).data[0]?.taskUUID).toBe(task['taskUUID']);
  });

  it('refuses an unknown coding with 415, a plain body labelled gzip with 400, and a bomb at the body limit', async () => {
    const config = testConfig();
    const app = await buildTestApp({ config: { ...config, limits: { ...config.limits, bodyLimitBytes: 64 * 1024 } } });
    const unknown = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { ...authorized, 'content-encoding': 'zstd' }, payload: JSON.stringify([imageTask()]) });
    expect(unknown.statusCode).toBe(415);
    expect(readTaskResponse(unknown.body).errors[0]).toMatchObject({ code: 'unsupportedMediaType', allowed: ['gzip', 'deflate', 'br', 'identity'] });
    const mislabelled = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { ...authorized, 'content-encoding': 'gzip' }, payload: JSON.stringify([imageTask()]) });
    expect(mislabelled.statusCode).toBe(400);
    expect(readTaskResponse(mislabelled.body).errors[0]?.code).toBe('invalidRequestBody');
    // 100 MB of spaces in 100 KB of gzip: refused once 64 KiB are decoded.
    const bomb = gzipSync(Buffer.alloc(100 * 1024 * 1024, 0x20));
    const before = process.memoryUsage().rss;
    const bombed = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { ...authorized, 'content-encoding': 'gzip' }, payload: bomb });
    expect(bombed.statusCode).toBe(413);
    expect(readTaskResponse(bombed.body).errors[0]?.code).toBe('payloadTooLarge');
    expect(process.memoryUsage().rss - before).toBeLessThan(50 * 1024 * 1024);
  });

  it('reads JSON as UTF-8, and refuses a body labelled with another charset', async () => {
    const app = await buildTestApp({ dispatcher: createEchoDispatcher() });
    for (const charset of ['utf-8', 'UTF-8', 'utf8', '"utf-8"']) {
      const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { ...authorized, 'content-type': `application/json; charset=${charset}` }, payload: JSON.stringify([imageTask()]) });
      expect(response.statusCode, charset).toBe(200);
    }
    const latin1 = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { ...authorized, 'content-type': 'application/json; charset=iso-8859-1' }, payload: JSON.stringify([imageTask()]) });
    expect(latin1.statusCode).toBe(415);
    expect(readTaskResponse(latin1.body).errors[0]).toMatchObject({ code: 'unsupportedMediaType', message: expect.stringContaining('charset=iso-8859-1') });
  });
});
