import { createHash } from 'node:crypto';

/**
 * Who sent a request: the API key it authenticated with, known only by its digest. Sessions, and later
 * stored tasks and images, belong to a principal; one never reads another's.
 */
export interface Principal {
  /** SHA-256 of the API key (hex), or `open` on a gateway without API_KEYS and without a key presented. */
  readonly id: string;
}

/** A short tag of a principal for names others can see (job ids, Redis keys): stable, and not the digest itself. */
export function principalTag(principalId: string): string {
  return createHash('sha256').update(principalId).digest('hex').slice(0, 32);
}
