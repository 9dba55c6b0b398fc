import type { LedgerEntry } from '../contracts/task-ledger.js';
import type { ImageResult } from '../contracts/task-result.js';

/**
 * A ledger entry as text, for Redis: JSON, with seeds beyond 2^53 − 1 (bigints, which JSON cannot hold)
 * written as `{"$bigint": "digits"}` and read back as the same bigint, so a seed is never rounded on its way
 * through the ledger. Anything that does not read as an entry is undefined, never a guess.
 */

interface StoredSeed {
  readonly $bigint: string;
}

export function encodeEntry(entry: LedgerEntry): string {
  // Written on every task's claim and end; most hold no seed beyond 2^53 − 1, and then need no copy.
  if (!entry.results.some((result) => typeof result.seed === 'bigint')) return JSON.stringify(entry);
  return JSON.stringify({ ...entry, results: entry.results.map((result) => (typeof result.seed === 'bigint' ? { ...result, seed: { $bigint: result.seed.toString() } } : result)) });
}

export function decodeEntry(text: string | null | undefined): LedgerEntry | undefined {
  if (!text) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isEntry(parsed)) return undefined;
  const results: ImageResult[] = parsed.results.map(({ seed, ...rest }) => ({ ...rest, seed: isStoredSeed(seed) ? BigInt(seed.$bigint) : seed }));
  return { ...parsed, results };
}

function isEntry(value: unknown): value is Omit<LedgerEntry, 'results'> & { results: (Omit<ImageResult, 'seed'> & { seed: ImageResult['seed'] | StoredSeed })[] } {
  if (typeof value !== 'object' || value === null) return false;
  const entry = value as Record<string, unknown>;
  return (
    typeof entry['taskUUID'] === 'string' &&
    typeof entry['taskType'] === 'string' &&
    (entry['state'] === 'processing' || entry['state'] === 'success' || entry['state'] === 'error') &&
    Array.isArray(entry['results']) &&
    Array.isArray(entry['errors']) &&
    typeof entry['updatedAt'] === 'number'
  );
}

function isStoredSeed(seed: unknown): seed is StoredSeed {
  return typeof seed === 'object' && seed !== null && typeof (seed as { $bigint?: unknown }).$bigint === 'string' && /^\d{1,20}$/.test((seed as StoredSeed).$bigint);
}

/** Any value as JSON text, bigints (seeds beyond 2^53 − 1) kept as `{"$bigint": "digits"}`. */
export function encodeWithBigints(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? { $bigint: item.toString() } : item));
}

/** The inverse of encodeWithBigints. */
export function decodeWithBigints(text: string): unknown {
  return JSON.parse(text, (_key, item: unknown) => (isStoredSeed(item) ? BigInt(item.$bigint) : item));
}
