import diagnosticsChannel from 'node:diagnostics_channel';
import type { LookupAddress } from 'node:dns';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createWebhookDelivery, type WebhookDelivery, type WebhookDeliveryOptions } from '../../src/webhooks/deliver-webhook.js';
import { signWebhook, verifyWebhookSignature, WEBHOOK_SIGNATURE_HEADER } from '../../src/webhooks/webhook-signature.js';

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

interface Receiver {
  readonly url: string;
  readonly port: number;
  readonly received: Received[];
  readonly connections: () => number;
}

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A real HTTP server on loopback that records every request and connection. */
async function receiver(handle: (request: Received, response: ServerResponse) => void): Promise<Receiver> {
  const received: Received[] = [];
  let connections = 0;
  const server = createServer((request: IncomingMessage, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const entry = { method: request.method ?? '', url: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(entry);
      handle(entry, response);
    });
  });
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${port}`, port, received, connections: () => connections };
}

function answer(status: number, headers: Record<string, string> = {}) {
  return (_request: Received, response: ServerResponse): void => {
    response.writeHead(status, headers).end('an answer body that is thrown away');
  };
}

function delivery(overrides: Partial<WebhookDeliveryOptions> = {}): WebhookDelivery {
  const created = createWebhookDelivery({
    policy: { requireHttps: false, allowedHosts: ['127.0.0.1'] },
    timeoutMs: 2_000,
    maxRedirects: 3,
    ...overrides,
  });
  cleanups.push(() => created.close());
  return created;
}

/** Hosts undici is about to open a connection to, from its own diagnostics channel. */
function watchConnects(): string[] {
  const hosts: string[] = [];
  const listener = (message: unknown): void => {
    const { connectParams } = message as { connectParams: { hostname: string } };
    hosts.push(connectParams.hostname);
  };
  diagnosticsChannel.subscribe('undici:client:beforeConnect', listener);
  cleanups.push(async () => {
    diagnosticsChannel.unsubscribe('undici:client:beforeConnect', listener);
  });
  return hosts;
}

function lookupAnswering(...answers: string[]) {
  const asked: string[] = [];
  const lookup = async (hostname: string): Promise<readonly LookupAddress[]> => {
    asked.push(hostname);
    const address = answers[Math.min(asked.length, answers.length) - 1] ?? '';
    return [{ address, family: 4 }];
  };
  return { lookup, asked };
}

const body = JSON.stringify({ taskUUID: '6b1f0e4a-0000-4000-8000-000000000000', images: [{ imageURL: 'https://x/y.png' }] });

describe('createWebhookDelivery', () => {
  it('POSTs the body and headers intact and reports a 200 as delivered', async () => {
    const target = await receiver(answer(200));
    const signature = signWebhook('whsec_test', body, 1_700_000_000);
    const outcome = await delivery().deliver(`${target.url}/hook?token=secret`, body, { [WEBHOOK_SIGNATURE_HEADER]: signature, 'X-Task-Id': 'abc' });
    expect(outcome).toEqual({ ok: true, status: 200, url: `${target.url}/hook` });
    expect(target.received).toHaveLength(1);
    const [request] = target.received;
    expect(request?.method).toBe('POST');
    expect(request?.url).toBe('/hook?token=secret');
    expect(request?.body).toBe(body);
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['user-agent']).toBe('clipgate-webhooks');
    expect(request?.headers['x-task-id']).toBe('abc');
    expect(verifyWebhookSignature('whsec_test', request?.body ?? '', String(request?.headers[WEBHOOK_SIGNATURE_HEADER]), 1_700_000_010)).toBe(true);
  });

  it.each([
    [500, true],
    [503, true],
    [408, true],
    [429, true],
    [400, false],
    [404, false],
    [410, false],
  ])('reports a %i as retryable: %s', async (status, retryable) => {
    const target = await receiver(answer(status));
    const outcome = await delivery().deliver(`${target.url}/hook`, body, {});
    expect(outcome).toEqual({ ok: false, status, reason: `${target.url}/hook answered ${status}`, retryable, url: `${target.url}/hook` });
  });

  it("passes a 429's Retry-After on", async () => {
    const target = await receiver(answer(429, { 'retry-after': '7' }));
    const outcome = await delivery().deliver(`${target.url}/hook`, body, {});
    expect(outcome.ok === false && outcome.retryAfterMs).toBe(7_000);
  });

  it('gives up on a receiver that never answers, retryably', async () => {
    const target = await receiver(() => undefined);
    const started = Date.now();
    const outcome = await delivery({ timeoutMs: 300 }).deliver(`${target.url}/hook`, body, {});
    expect(outcome).toEqual({ ok: false, reason: `${target.url}/hook: timed out after 300 ms`, retryable: true, url: `${target.url}/hook` });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(target.received).toHaveLength(1);
  });

  it('reports a refused connection as retryable', async () => {
    const target = await receiver(answer(200));
    const closedPort = target.port;
    await cleanups.splice(0, 1)[0]?.();
    const outcome = await delivery().deliver(`http://127.0.0.1:${closedPort}/hook`, body, {});
    expect(outcome.ok).toBe(false);
    expect(outcome.ok === false && outcome.retryable).toBe(true);
    expect(outcome.ok === false && outcome.reason).toMatch(/connection error \(ECONNREFUSED\)/);
  });

  it('follows a 307 to another allowlisted receiver and POSTs the same body there', async () => {
    const final = await receiver(answer(204));
    const first = await receiver(answer(307, { location: `${final.url}/moved` }));
    const outcome = await delivery().deliver(`${first.url}/hook`, body, { 'x-task-id': 'abc' });
    expect(outcome).toEqual({ ok: true, status: 204, url: `${final.url}/moved` });
    expect(final.received.map((request) => [request.method, request.url, request.body, request.headers['x-task-id']])).toEqual([['POST', '/moved', body, 'abc']]);
  });

  it('re-POSTs after a 303 too, with a relative Location', async () => {
    const target = await receiver((request, response) => {
      if (request.url === '/hook') response.writeHead(303, { location: '/elsewhere' }).end();
      else response.writeHead(200).end();
    });
    const outcome = await delivery().deliver(`${target.url}/hook`, body, {});
    expect(outcome).toEqual({ ok: true, status: 200, url: `${target.url}/elsewhere` });
    expect(target.received.map((request) => [request.method, request.url, request.body])).toEqual([
      ['POST', '/hook', body],
      ['POST', '/elsewhere', body],
    ]);
  });

  it.each([
    ['http://10.0.0.1/steal', 'webhookURL host 10.0.0.1 is a private address'],
    ['http://169.254.169.254/latest/meta-data/', 'webhookURL host 169.254.169.254 is a link-local address (cloud metadata lives there)'],
  ])('refuses a redirect to %s without connecting there', async (location, why) => {
    const connects = watchConnects();
    const target = await receiver(answer(302, { location }));
    const outcome = await delivery().deliver(`${target.url}/hook`, body, {});
    const shownLocation = new URL(location);
    expect(outcome).toEqual({
      ok: false,
      reason: `redirect to ${shownLocation.origin}${shownLocation.pathname} refused: ${why}`,
      retryable: false,
      url: `${shownLocation.origin}${shownLocation.pathname}`,
    });
    expect(connects).toEqual(['127.0.0.1']);
  });

  it('stops following a redirect loop after maxRedirects', async () => {
    const target = await receiver(answer(308, { location: '/hook' }));
    const outcome = await delivery({ maxRedirects: 3 }).deliver(`${target.url}/hook`, body, {});
    expect(outcome).toEqual({ ok: false, status: 308, reason: `${target.url}/hook redirected more than 3 times`, retryable: false, url: `${target.url}/hook` });
    expect(target.received).toHaveLength(4);
  });

  it('refuses a first URL the policy forbids, without retrying', async () => {
    const connects = watchConnects();
    const outcome = await delivery({ policy: { requireHttps: false, allowedHosts: [] } }).deliver('http://127.0.0.1:9/hook', body, {});
    expect(outcome).toEqual({ ok: false, reason: 'webhookURL host 127.0.0.1 is a loopback address', retryable: false, url: 'http://127.0.0.1:9/hook' });
    expect(connects).toEqual([]);
  });

  it('refuses a host name that resolves to loopback when only 127.0.0.1 is allowlisted', async () => {
    const target = await receiver(answer(200));
    const { lookup } = lookupAnswering('127.0.0.1');
    const outcome = await delivery({ lookup }).deliver(`http://rebind.test:${target.port}/hook`, body, {});
    expect(outcome).toEqual({
      ok: false,
      reason: 'webhookURL host "rebind.test" resolves to 127.0.0.1, a loopback address',
      retryable: false,
      url: `http://rebind.test:${target.port}/hook`,
    });
    expect(target.connections()).toBe(0);
  });

  it('refuses at connect time a host name that rebinds to loopback after the check (DNS rebinding)', async () => {
    const target = await receiver(answer(200));
    const { lookup, asked } = lookupAnswering('93.184.215.14', '127.0.0.1');
    const connects = watchConnects();
    const outcome = await delivery({ lookup }).deliver(`http://rebind.test:${target.port}/hook`, body, {});
    expect(outcome).toEqual({
      ok: false,
      reason: 'webhookURL host "rebind.test" resolves to 127.0.0.1, a loopback address',
      retryable: false,
      url: `http://rebind.test:${target.port}/hook`,
    });
    // The pre-check saw the public answer, the socket's own lookup the loopback one: it never connected.
    expect(asked).toEqual(['rebind.test', 'rebind.test']);
    expect(connects).toEqual(['rebind.test']);
    expect(target.connections()).toBe(0);
    expect(target.received).toHaveLength(0);
  });

  it('connects through its own lookup to an allowlisted host name', async () => {
    const target = await receiver(answer(200));
    const { lookup, asked } = lookupAnswering('127.0.0.1');
    const outcome = await delivery({ lookup, policy: { requireHttps: false, allowedHosts: ['receiver.test'] } }).deliver(`http://receiver.test:${target.port}/hook`, body, {});
    expect(outcome).toEqual({ ok: true, status: 200, url: `http://receiver.test:${target.port}/hook` });
    expect(asked).toEqual(['receiver.test', 'receiver.test']);
    expect(target.received.map((request) => request.headers.host)).toEqual([`receiver.test:${target.port}`]);
  });

  it('reports a host name that does not resolve as retryable', async () => {
    const lookup = async (): Promise<readonly LookupAddress[]> => {
      throw Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' });
    };
    const outcome = await delivery({ lookup }).deliver('http://flaky.test/hook', body, {});
    expect(outcome).toEqual({ ok: false, reason: 'webhookURL host "flaky.test" could not be resolved (EAI_AGAIN)', retryable: true, url: 'http://flaky.test/hook' });
  });
});
