import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { buildTestApp, testConfig } from '../helper.js';

/** Raw sockets against a listening app: what Node's HTTP parser and the connection limit answer. */

async function listening(http: Partial<ReturnType<typeof testConfig>['http']> = {}) {
  const config = testConfig();
  const app = await buildTestApp({ config: { ...config, http: { ...config.http, ...http } } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

/** Writes `chunks` (a string, or strings sent `everyMs` apart) and collects what comes back until the server closes. */
function exchange(port: number, chunks: string[], everyMs = 0): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const started = Date.now();
    let text = '';
    let sent = 0;
    const timer = setInterval(() => {
      if (sent < chunks.length && !socket.destroyed) socket.write(chunks[sent++]!);
    }, Math.max(everyMs, 1));
    socket.on('data', (chunk) => (text += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ text, closedAfterMs: Date.now() - started });
    });
  });
}

function bodyOf(response: string): { errors: { code: string; retryable: boolean }[]; error: { code: string } } {
  return JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as { errors: { code: string; retryable: boolean }[]; error: { code: string } };
}

describe('HTTP deadlines and limits', () => {
  it('closes a body sent one byte at a time once the request deadline passes, with 408 in the documented shape', async () => {
    const port = await listening({ requestTimeoutMs: 1500, headersTimeoutMs: 1000 });
    const head = 'POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n';
    const { text, closedAfterMs } = await exchange(port, [head, ...Array.from({ length: 100 }, () => ' ')], 200);
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
    expect(bodyOf(text)).toMatchObject({ errors: [{ code: 'requestTimeout', retryable: true }], error: { code: 'requestTimeout' } });
    expect(closedAfterMs).toBeLessThan(4000);
  });

  it('closes headers that never finish', async () => {
    const port = await listening({ requestTimeoutMs: 5000, headersTimeoutMs: 1000 });
    const { text, closedAfterMs } = await exchange(port, ['GET /health/live HTTP/1.1\r\n', ...Array.from({ length: 50 }, (_, index) => `X-Slow-${index}: 1\r\n`)], 200);
    expect(bodyOf(text).errors[0]?.code).toBe('requestTimeout');
    expect(closedAfterMs).toBeLessThan(4000);
  });

  it('answers a malformed request and oversized headers in the documented shape', async () => {
    const port = await listening();
    const malformed = await exchange(port, ['GARBAGE\r\n\r\n']);
    expect(malformed.text.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    expect(bodyOf(malformed.text).errors[0]?.code).toBe('malformedRequest');
    const huge = await exchange(port, [`GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`]);
    expect(huge.text.split('\r\n')[0]).toBe('HTTP/1.1 431 Request Header Fields Too Large');
    expect(bodyOf(huge.text).errors[0]?.code).toBe('headersTooLarge');
  });

  it('takes at most HTTP_MAX_CONNECTIONS_PER_IP connections from one address', async () => {
    const port = await listening({ maxConnectionsPerIp: 3 });
    const held = await Promise.all(
      Array.from({ length: 3 }, () => new Promise<Socket>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => resolve(socket));
      })),
    );
    const refused = await exchange(port, []);
    expect(refused.text.split('\r\n')[0]).toBe('HTTP/1.1 429 Too Many Requests');
    expect(bodyOf(refused.text).errors[0]).toMatchObject({ code: 'tooManyConnections', retryable: true });
    // A connection given back makes room.
    held[0]!.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const answered = await exchange(port, ['GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    expect(answered.text.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    for (const socket of held) socket.destroy();
  });
});
