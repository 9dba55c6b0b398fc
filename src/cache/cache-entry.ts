import { errorCatalogue } from '../errors.js';
import type { Resolution } from '../contracts/model-resolver.js';

/**
 * A remembered resolution with its clock: fresh for the TTL, then served stale (and refreshed in the
 * background) for the stale window after that, then gone. `v` versions the stored shape: an entry written by
 * another version of clipgate is ignored, never misread.
 */
// 2: embedding records are inspected for float16 range, LoRA records carry their file; older records are looked up again.
export const CACHE_SCHEMA_VERSION = 2;

export interface CacheEntry {
  readonly v: typeof CACHE_SCHEMA_VERSION;
  readonly resolution: Resolution;
  readonly storedAt: number;
  readonly freshUntil: number;
  readonly staleUntil: number;
}

export interface CacheTimes {
  readonly ttlMs: number;
  readonly staleMs: number;
  readonly negativeTtlMs: number;
  /** How long a failed lookup is remembered, so a registry outage is not hammered by every request. */
  readonly unavailableTtlMs: number;
}

export function entryFor(resolution: Resolution, now: number, times: CacheTimes): CacheEntry {
  const lasting = (freshMs: number, staleMs = 0): CacheEntry => ({
    v: CACHE_SCHEMA_VERSION,
    resolution,
    storedAt: now,
    freshUntil: now + freshMs,
    staleUntil: now + freshMs + staleMs,
  });
  switch (resolution.kind) {
    case 'found':
      return lasting(times.ttlMs, times.staleMs);
    case 'unavailable':
      return lasting(times.unavailableTtlMs);
    case 'rejected':
      // A refusal a retry may clear (a checksum mismatch) is remembered as briefly as an outage.
      return lasting(errorCatalogue[resolution.code].retryable ? times.unavailableTtlMs : times.negativeTtlMs);
    case 'notFound':
      return lasting(times.negativeTtlMs);
    case 'deferred':
      // Never looked up, so never stored; a request that gets it asks again.
      return lasting(0);
  }
}

export type Freshness = 'fresh' | 'stale' | 'expired';

export function freshnessOf(entry: CacheEntry, now: number): Freshness {
  if (now < entry.freshUntil) return 'fresh';
  return now < entry.staleUntil ? 'stale' : 'expired';
}

export function encodeEntry(entry: CacheEntry): string {
  return JSON.stringify(entry);
}

/** Anything unreadable or of another schema version is a miss. */
export function decodeEntry(text: string | null | undefined): CacheEntry | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<CacheEntry>;
    if (value.v !== CACHE_SCHEMA_VERSION || typeof value.freshUntil !== 'number' || typeof value.staleUntil !== 'number') return undefined;
    if (!value.resolution || typeof value.resolution !== 'object' || typeof value.resolution.kind !== 'string') return undefined;
    return value as CacheEntry;
  } catch {
    return undefined;
  }
}
