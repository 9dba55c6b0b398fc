import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhookSignature, WEBHOOK_SIGNATURE_HEADER } from '../../src/webhooks/webhook-signature.js';

const secret = 'whsec_test';
const body = '{"taskUUID":"a","images":[]}';
const now = 1_700_000_000;

describe('webhook signatures', () => {
  it('signs in the t=…,v1=… form and verifies its own signature', () => {
    const header = signWebhook(secret, body, now);
    expect(WEBHOOK_SIGNATURE_HEADER).toBe('clipgate-signature');
    expect(header).toMatch(/^t=1700000000,v1=[0-9a-f]{64}$/);
    expect(verifyWebhookSignature(secret, body, header, now + 10)).toBe(true);
  });

  it('refuses a tampered body and a wrong secret', () => {
    const header = signWebhook(secret, body, now);
    expect(verifyWebhookSignature(secret, body.replace('"a"', '"b"'), header, now)).toBe(false);
    expect(verifyWebhookSignature('whsec_other', body, header, now)).toBe(false);
  });

  it('refuses a timestamp outside the tolerance (a replay)', () => {
    const header = signWebhook(secret, body, now);
    expect(verifyWebhookSignature(secret, body, header, now + 301)).toBe(false);
    expect(verifyWebhookSignature(secret, body, header, now - 301)).toBe(false);
    expect(verifyWebhookSignature(secret, body, header, now + 3600, 7200)).toBe(true);
  });

  it('refuses a timestamp that was changed after signing', () => {
    const header = signWebhook(secret, body, now).replace(`t=${now}`, `t=${now + 1}`);
    expect(verifyWebhookSignature(secret, body, header, now)).toBe(false);
  });

  it.each(['', 'garbage', 't=1700000000', 'v1=abc', 't=abc,v1=' + 'a'.repeat(64), 't=1700000000,v1=' + 'a'.repeat(63), 't=1700000000,v1=' + 'z'.repeat(64)])(
    'refuses the malformed header %j',
    (header) => {
      expect(verifyWebhookSignature(secret, body, header, now)).toBe(false);
    },
  );
});
