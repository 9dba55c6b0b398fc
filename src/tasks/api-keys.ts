import { createHash, timingSafeEqual } from 'node:crypto';
import type { Principal } from '../contracts/principal.js';

/**
 * The configured API keys, and who a presented key makes the caller. Keys are compared as SHA-256 digests
 * with timingSafeEqual, against every key without stopping early, so the time taken says nothing about how
 * much of a guess matched, nor about which key or how long. Without API_KEYS the gateway is open, and every key
 * (or none) is taken.
 */
export interface ApiKeys {
  /** True when no keys are configured. */
  readonly open: boolean;
  /** The principal of a valid key; undefined when the key is not one of the configured ones. */
  verify(key: string): Principal | undefined;
  /** Who an open gateway's caller is when they present no key. */
  readonly anonymous: Principal;
}

export function createApiKeys(keys: readonly string[]): ApiKeys {
  const digests = keys.map(digest);
  const principals = digests.map((value) => Object.freeze({ id: value.toString('hex') }));
  const anonymous: Principal = Object.freeze({ id: 'open' });
  return {
    open: keys.length === 0,
    anonymous,
    verify(key) {
      const presented = digest(key);
      if (digests.length === 0) return { id: presented.toString('hex') };
      let match = -1;
      for (let index = 0; index < digests.length; index++) {
        if (timingSafeEqual(presented, digests[index]!)) match = index;
      }
      return match < 0 ? undefined : principals[match];
    },
  };
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}
