import { hash } from 'node:crypto';

/**
 * A digest of a task as its client sent it, kept on its ledger record: a resend of the same task (a retry)
 * has the same one, another task that reuses the taskUUID has not. It is on every task's path: one-shot
 * hashing, and a replacer (slow) only for the rare task that holds a bigint (a seed beyond 2^53).
 */
export function taskFingerprint(raw: Record<string, unknown>): string {
  let text: string;
  try {
    text = JSON.stringify(raw);
  } catch {
    text = JSON.stringify(raw, (_key, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value));
  }
  // Not a security boundary (a key can only collide with its own tasks): SHA-1 is enough, and cheaper.
  return hash('sha1', text, 'base64url');
}
