import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { principalTag } from '../../src/contracts/principal.js';

describe('principalTag', () => {
  it('is the first 32 hex digits of the SHA-256 of the principal id, the same on every call', () => {
    const id = createHash('sha256').update('a key').digest('hex');
    const expected = createHash('sha256').update(id).digest('hex').slice(0, 32);
    expect(principalTag(id)).toBe(expected);
    expect(principalTag(id)).toBe(expected);
    expect(principalTag('open')).toBe(createHash('sha256').update('open').digest('hex').slice(0, 32));
  });

  it('stays right for any number of principals (its memo is bounded)', () => {
    const ids = Array.from({ length: 5000 }, (_, index) => `principal-${index}`);
    const first = ids.map(principalTag);
    expect(new Set(first).size).toBe(ids.length);
    expect(ids.map(principalTag)).toEqual(first);
    expect(first[0]).toBe(createHash('sha256').update('principal-0').digest('hex').slice(0, 32));
  });
});
