import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook signatures in Stripe's scheme: an HMAC-SHA256 over "<timestamp>.<body>", so a receiver can
 * tell the POST came from this gateway and refuse an old one replayed.
 */

export const WEBHOOK_SIGNATURE_HEADER = 'clipgate-signature';

/** The header's value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export function signWebhook(secret: string, body: string, timestampSeconds: number): string {
  const t = Math.floor(timestampSeconds);
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/** What a receiver runs on the raw body, before parsing it. */
export function verifyWebhookSignature(secret: string, body: string, header: string, nowSeconds: number, toleranceSeconds = 300): boolean {
  const fields = new Map(header.split(',').map((field) => [field.slice(0, field.indexOf('=')).trim(), field.slice(field.indexOf('=') + 1).trim()]));
  const t = fields.get('t') ?? '';
  const v1 = fields.get('v1') ?? '';
  if (!/^\d+$/.test(t) || !/^[0-9a-f]{64}$/.test(v1)) return false;
  // A signature older (or newer) than the tolerance is a replay, however valid.
  if (Math.abs(nowSeconds - Number(t)) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  // Both 32 bytes, as timingSafeEqual needs; constant time so the signature cannot be guessed byte by byte.
  return timingSafeEqual(expected, Buffer.from(v1, 'hex'));
}
