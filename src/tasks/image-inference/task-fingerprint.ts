import { createHash } from 'node:crypto';

/**
 * A digest of a task as its client sent it, kept on its ledger record: a resend of the same task (a retry)
 * has the same one, another task that reuses the taskUUID has not. Seeds may be bigints (lossless reading).
 */
export function taskFingerprint(raw: Record<string, unknown>): string {
  return createHash('sha256')
    .update(JSON.stringify(raw, (_key, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value)))
    .digest('base64url')
    .slice(0, 22);
}
