/**
 * Counters of the resolution path, kept as plain numbers so the operations work can expose them (as
 * Prometheus metrics) without this code knowing how.
 */
export interface ResolutionMetrics {
  l1Hits: number;
  l2Hits: number;
  staleServed: number;
  misses: number;
  /** Callers that waited for another caller's fetch in this process. */
  coalescedLocal: number;
  /** Fetches that waited for another replica holding the lock, instead of fetching. */
  coalescedPeer: number;
  registryCalls: number;
  registryFailures: number;
  downloads: number;
  /** Sum and count of source fetch durations, for an average; the histogram comes with the metrics issue. */
  sourceMillisTotal: number;
  sourceFetches: number;
  redisErrors: number;
  /** Cold AIRs a request did not look up, having spent its share (LookupContext.sourceLookups). */
  lookupsDeferred: number;
  /** Requests answered `unavailable` because a lookup took longer than its deadline (it went on). */
  lookupsOverDeadline: number;
}

export function createResolutionMetrics(): ResolutionMetrics {
  return {
    l1Hits: 0,
    l2Hits: 0,
    staleServed: 0,
    misses: 0,
    coalescedLocal: 0,
    coalescedPeer: 0,
    registryCalls: 0,
    registryFailures: 0,
    downloads: 0,
    sourceMillisTotal: 0,
    sourceFetches: 0,
    redisErrors: 0,
    lookupsDeferred: 0,
    lookupsOverDeadline: 0,
  };
}
