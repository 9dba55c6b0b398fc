import type { FastifyBaseLogger } from 'fastify';
import type { Air } from '../contracts/air.js';
import type { ModelResolver, Resolution } from '../contracts/model-resolver.js';
import { entryFor, freshnessOf, type CacheEntry, type CacheTimes } from './cache-entry.js';
import type { ModelCache } from './model-cache.js';
import type { Lease, PeerLocks } from './peer-lock.js';
import type { ResolutionMetrics } from './resolution-metrics.js';
import { createSingleFlight } from './single-flight.js';

/**
 * A resolver that asks its source at most once per AIR across all concurrent requests and all replicas:
 * L1 → L2 (one MGET for the whole request) → in-process single-flight → Redis lock (one replica fetches,
 * the others wait for its announcement) → source. Stale entries are served at once and refreshed in the
 * background; a source outage never replaces a stale record with an error.
 */

/** Looks one AIR up at the source, on behalf of `principal` (for fairness between clients). */
export type ResolutionSource = (air: Air, principal: string | undefined) => Promise<Resolution>;

export interface CachedResolverOptions {
  readonly source: ResolutionSource;
  readonly cache: ModelCache;
  /** Absent without Redis: dedupe is then per process. */
  readonly locks: PeerLocks | undefined;
  readonly times: CacheTimes;
  /** How long to wait for another replica's fetch before fetching ourselves. */
  readonly peerWaitMs: number;
  /**
   * The longest a request waits for a lookup at the source: past it the request is answered `unavailable`
   * (retryable) while the lookup goes on, and what it finds is cached for the retry.
   */
  readonly lookupDeadlineMs: number;
  readonly metrics: ResolutionMetrics;
  readonly clock: () => number;
  readonly logger: Pick<FastifyBaseLogger, 'warn'>;
}

export function createCachedResolver(options: CachedResolverOptions): ModelResolver {
  const { cache, locks, metrics, clock } = options;
  const flights = createSingleFlight<Resolution>();

  async function fromSource(air: Air, principal: string | undefined): Promise<Resolution> {
    const started = clock();
    try {
      return await options.source(air, principal);
    } finally {
      metrics.sourceFetches++;
      metrics.sourceMillisTotal += clock() - started;
    }
  }

  /** Fetch and store; a stale record is kept, not overwritten, when the source is unavailable. */
  async function fetchAndStore(air: Air, stale: CacheEntry | undefined, principal: string | undefined): Promise<Resolution> {
    const resolution = await fromSource(air, principal);
    if (resolution.kind === 'unavailable' && stale?.resolution.kind === 'found') {
      // Remember the failed refresh briefly, so the outage is not asked again by every request.
      cache.rememberLocally(air.canonical, { ...stale, freshUntil: clock() + options.times.unavailableTtlMs });
      return stale.resolution;
    }
    await cache.store(air.canonical, entryFor(resolution, clock(), options.times));
    return resolution;
  }

  /**
   * A hung registry or a stalled download holds no request longer than the deadline: the request is answered
   * unavailable (retryable), while the lookup goes on, keeps its single flight (a retry joins it rather than
   * ask again) and caches what it finds.
   */
  function withinDeadline(lookup: Promise<Resolution>): Promise<Resolution> {
    let timer: NodeJS.Timeout | undefined;
    const overdue = new Promise<Resolution>((resolve) => {
      timer = setTimeout(() => {
        metrics.lookupsOverDeadline++;
        resolve({ kind: 'unavailable', message: `its lookup at the registry has taken more than ${options.lookupDeadlineMs / 1000} s; it goes on, and what it finds is cached.` });
      }, options.lookupDeadlineMs);
    });
    return Promise.race([lookup, overdue]).finally(() => clearTimeout(timer));
  }

  /** A shared entry this replica may use: never an outage marker in place of the stale record it holds. */
  function usable(entry: CacheEntry | undefined, stale: CacheEntry | undefined): CacheEntry | undefined {
    if (!entry) return undefined;
    if (entry.resolution.kind === 'unavailable' && stale?.resolution.kind === 'found') return undefined;
    return entry;
  }

  async function acquire(key: string): Promise<Lease | 'elsewhere' | 'alone'> {
    if (!locks) return 'alone';
    try {
      return (await locks.tryAcquire(key)) ?? 'elsewhere';
    } catch {
      // Redis failed mid-way: fall back to per-process dedupe rather than fail the request.
      metrics.redisErrors++;
      return 'alone';
    }
  }

  async function fetchAcrossReplicas(air: Air, stale: CacheEntry | undefined, principal: string | undefined): Promise<Resolution> {
    const key = air.canonical;
    const lease = await acquire(key);
    if (lease === 'elsewhere') {
      metrics.coalescedPeer++;
      const entry = await locks?.waitFor(key, async () => usable(await cache.readShared(key), stale), options.peerWaitMs);
      if (entry) {
        cache.rememberLocally(key, entry);
        return entry.resolution;
      }
      // The other replica gave up or is very slow (its lock will expire): fetch ourselves.
      return fetchAndStore(air, stale, principal);
    }
    if (lease === 'alone') return fetchAndStore(air, stale, principal);
    try {
      // Double-checked: another replica may have stored the result between our MGET and our lock.
      const current = usable(await cache.readShared(key), stale);
      if (current && current.storedAt > (stale?.storedAt ?? 0)) {
        cache.rememberLocally(key, current);
        return current.resolution;
      }
      return await fetchAndStore(air, stale, principal);
    } finally {
      await lease.release();
      // Announced whatever happened: waiters read the result, or learn the lock is free and fetch.
      await locks?.announce(key).catch(() => undefined);
    }
  }

  function shared(air: Air, stale: CacheEntry | undefined, principal: string | undefined): Promise<Resolution> {
    const flight = flights.run(air.canonical, () => fetchAcrossReplicas(air, stale, principal));
    if (flight.joined) metrics.coalescedLocal++;
    return flight.promise;
  }

  return {
    resolveFromMemory(airs) {
      const entries = cache.peekLocal(airs.map((air) => air.canonical));
      if (!entries) return undefined;
      const now = clock();
      // A stale entry is served only with a background refresh, which resolveMany starts.
      if (entries.some((entry) => freshnessOf(entry, now) !== 'fresh')) return undefined;
      metrics.l1Hits += entries.length;
      const resolutions = new Map<string, Resolution>();
      airs.forEach((air, index) => {
        const entry = entries[index];
        if (entry) resolutions.set(air.canonical, entry.resolution);
      });
      return resolutions;
    },

    async resolveMany(airs, context) {
      const entries = await cache.getMany(airs.map((air) => air.canonical));
      const resolutions = new Map<string, Resolution>();
      const misses: Air[] = [];
      for (const air of airs) {
        const entry = entries.get(air.canonical);
        const freshness = entry ? freshnessOf(entry, clock()) : 'expired';
        if (entry && freshness === 'fresh') {
          resolutions.set(air.canonical, entry.resolution);
        } else if (entry && freshness === 'stale') {
          metrics.staleServed++;
          resolutions.set(air.canonical, entry.resolution);
          shared(air, entry, context?.principal).catch((error: unknown) => options.logger.warn({ err: error, air: air.canonical }, 'background refresh failed'));
        } else {
          metrics.misses++;
          misses.push(air);
        }
      }
      // A request looks up at most its share of cold AIRs (a lookup already under way costs it nothing);
      // the rest wait for a retry, when those it did look up are cached.
      const budget = context?.sourceLookups ?? Infinity;
      let started = 0;
      const fetched = await Promise.all(
        misses.map((air): Promise<Resolution> => {
          if (!flights.has(air.canonical)) {
            if (started >= budget) {
              metrics.lookupsDeferred++;
              return Promise.resolve({ kind: 'deferred', budget });
            }
            started++;
          }
          return withinDeadline(shared(air, undefined, context?.principal));
        }),
      );
      misses.forEach((air, index) => {
        const resolution = fetched[index];
        if (resolution) resolutions.set(air.canonical, resolution);
      });
      return resolutions;
    },
  };
}
