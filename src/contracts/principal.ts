import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

/**
 * Who sent a request: the API key it authenticated with, known only by its digest. Sessions, and later
 * stored tasks and images, belong to a principal; one never reads another's.
 */
export interface Principal {
  /** SHA-256 of the API key (hex), or `open` on a gateway without API_KEYS and without a key presented. */
  readonly id: string;
}

// Each ledger call names its Redis key by the tag, twice per task: a SHA-256 each time was ~4 µs per task.
// Bounded, since an open gateway takes whatever key a client presents.
const tags = new LRUCache<string, string>({ max: 4096 });

/** A short tag of a principal for names others can see (job ids, Redis keys): stable, and not the digest itself. */
export function principalTag(principalId: string): string {
  let tag = tags.get(principalId);
  if (tag === undefined) {
    tag = createHash('sha256').update(principalId).digest('hex').slice(0, 32);
    tags.set(principalId, tag);
  }
  return tag;
}
