import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import { checkWebhookTarget, checkWebhookUrl, forbiddenAddressReason, type WebhookTargetPolicy } from '../../src/webhooks/webhook-target.js';

const open: WebhookTargetPolicy = { requireHttps: false, allowedHosts: [] };

function answering(...addresses: string[]) {
  const asked: string[] = [];
  const lookup = async (hostname: string): Promise<readonly LookupAddress[]> => {
    asked.push(hostname);
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return { lookup, asked };
}

function reasonOf(result: { ok: boolean; reason?: string }): string {
  expect(result.ok).toBe(false);
  return result.reason ?? '';
}

describe('checkWebhookUrl', () => {
  it('refuses 127.0.0.1 unless the allowlist names it', () => {
    expect(reasonOf(checkWebhookUrl('http://127.0.0.1:8080/hook', open))).toBe('webhookURL host 127.0.0.1 is a loopback address');
    const allowed = checkWebhookUrl('http://127.0.0.1:8080/hook', { requireHttps: false, allowedHosts: ['127.0.0.1'] });
    expect(allowed.ok && allowed.url.href).toBe('http://127.0.0.1:8080/hook');
  });

  it('allows a CIDR allowlist entry', () => {
    const policy = { requireHttps: false, allowedHosts: ['127.0.0.0/8', '::1/128'] };
    expect(checkWebhookUrl('http://127.9.8.7/', policy).ok).toBe(true);
    expect(checkWebhookUrl('http://[::1]/', policy).ok).toBe(true);
    expect(checkWebhookUrl('http://10.0.0.1/', policy).ok).toBe(false);
  });

  it.each([
    ['http://10.0.0.1/', 'a private address'],
    ['http://169.254.169.254/latest/meta-data/', 'a link-local address (cloud metadata lives there)'],
    ['http://[::1]/', 'a loopback address'],
    ['http://[::ffff:127.0.0.1]/', 'a loopback address (embedded as 127.0.0.1)'],
    ['http://[64:ff9b::a00:1]/', 'a private address (embedded as 10.0.0.1)'],
    ['http://[fd00:ec2::254]/', 'a private address'],
    ['http://[fe80::1]/', 'a link-local address'],
    ['http://2130706433/', 'webhookURL host 127.0.0.1 is a loopback address'],
    ['http://0x7f.1/', 'webhookURL host 127.0.0.1 is a loopback address'],
    ['http://0.0.0.0/', 'an unspecified address'],
    ['http://100.64.1.1/', 'carrier-grade NAT'],
    ['http://224.0.0.1/', 'a multicast address'],
    ['http://255.255.255.255/', 'a reserved address'],
  ])('refuses %s', (url, reason) => {
    expect(reasonOf(checkWebhookUrl(url, open))).toContain(reason);
  });

  it('refuses schemes other than http(s), http where https is required, and userinfo', () => {
    expect(reasonOf(checkWebhookUrl('ftp://example.com/', open))).toBe('webhookURL must use http or https, not ftp');
    expect(reasonOf(checkWebhookUrl('http://example.com/', { requireHttps: true, allowedHosts: [] }))).toBe('webhookURL must use https, not http');
    expect(checkWebhookUrl('https://example.com/', { requireHttps: true, allowedHosts: [] }).ok).toBe(true);
    expect(reasonOf(checkWebhookUrl('http://user:pass@example.com/', open))).toBe('webhookURL must not contain a user name or password');
    expect(reasonOf(checkWebhookUrl('not a url', open))).toBe('webhookURL is not a URL');
  });

  it('throws on an allowlist entry that is no hostname, address or CIDR', () => {
    expect(() => checkWebhookUrl('http://10.0.0.1/', { requireHttps: false, allowedHosts: ['10.0.0.0/99'] })).toThrow(/allowedHosts entry "10.0.0.0\/99"/);
  });
});

describe('forbiddenAddressReason', () => {
  it('judges public addresses fine and private ones with their kind', () => {
    expect(forbiddenAddressReason('93.184.215.14', 4, open)).toBeUndefined();
    expect(forbiddenAddressReason('2606:2800:21f:cb07:6820:80da:af6b:8b2c', 6, open)).toBeUndefined();
    expect(forbiddenAddressReason('::ffff:8.8.8.8', 6, open)).toBeUndefined();
    expect(forbiddenAddressReason('172.20.0.1', 4, open)).toBe('a private address');
    expect(forbiddenAddressReason('198.18.0.1', 4, open)).toBe('a benchmarking address');
    expect(forbiddenAddressReason('2001:db8::1', 6, open)).toBe('a documentation address');
    expect(forbiddenAddressReason('ff02::1', 6, open)).toBe('a multicast address');
    expect(forbiddenAddressReason('::', 6, open)).toBe('an unspecified address');
  });

  it('lets an allowlisted IPv4 address through in its IPv4-mapped form, not its NAT64 one', () => {
    const policy = { requireHttps: false, allowedHosts: ['127.0.0.1'] };
    expect(forbiddenAddressReason('::ffff:127.0.0.1', 6, policy)).toBeUndefined();
    expect(forbiddenAddressReason('64:ff9b::7f00:1', 6, policy)).toBe('a loopback address (embedded as 127.0.0.1)');
  });
});

describe('checkWebhookTarget', () => {
  it('refuses localhost after resolving it', async () => {
    const result = await checkWebhookTarget('http://localhost:9/hook', open);
    expect(reasonOf(result)).toMatch(/^webhookURL host "localhost" resolves to (127\.0\.0\.1|::1), a loopback address$/);
  });

  it('refuses a host name with any private address among its answers', async () => {
    const { lookup, asked } = answering('93.184.215.14', '10.1.2.3');
    const result = await checkWebhookTarget('https://hooks.example.test/x', open, lookup);
    expect(reasonOf(result)).toBe('webhookURL host "hooks.example.test" resolves to 10.1.2.3, a private address');
    expect(asked).toEqual(['hooks.example.test']);
  });

  it('allows a host name that resolves to public addresses only', async () => {
    const result = await checkWebhookTarget('https://hooks.example.test/x', open, answering('93.184.215.14').lookup);
    expect(result.ok && result.url.hostname).toBe('hooks.example.test');
  });

  it('allows an allowlisted host name whatever it resolves to, case-insensitively', async () => {
    const policy = { requireHttps: false, allowedHosts: ['Internal.Example.Test'] };
    expect((await checkWebhookTarget('http://internal.example.test/', policy, answering('10.1.2.3').lookup)).ok).toBe(true);
  });

  it('does not let a host name inherit an allowlisted address it resolves to', async () => {
    const policy = { requireHttps: false, allowedHosts: ['127.0.0.1', '10.0.0.0/8'] };
    expect(reasonOf(await checkWebhookTarget('http://rebind.test/', policy, answering('127.0.0.1').lookup))).toBe(
      'webhookURL host "rebind.test" resolves to 127.0.0.1, a loopback address',
    );
    expect((await checkWebhookTarget('http://10.9.9.9/', policy, answering().lookup)).ok).toBe(true);
  });

  it('does not resolve IP literals', async () => {
    const { lookup, asked } = answering('10.0.0.1');
    expect((await checkWebhookTarget('http://93.184.215.14/', open, lookup)).ok).toBe(true);
    expect(asked).toEqual([]);
  });

  it('refuses a host name that does not resolve', async () => {
    const lookup = async (): Promise<readonly LookupAddress[]> => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
    };
    const result = await checkWebhookTarget('http://nowhere.invalid/', open, lookup);
    expect(result).toEqual({ ok: false, reason: 'webhookURL host "nowhere.invalid" could not be resolved (ENOTFOUND)', unresolved: true });
  });
});
