/**
 * In-process single-flight: concurrent calls for the same key share one execution and its result. The
 * key is forgotten as soon as the execution settles, so later calls run anew (caching is the tiers' job).
 */
export interface SingleFlight<T> {
  run(key: string, work: () => Promise<T>): { readonly promise: Promise<T>; readonly joined: boolean };
  /** Whether a call for `key` runs now (joining it would start nothing). */
  has(key: string): boolean;
  readonly inFlight: number;
}

export function createSingleFlight<T>(): SingleFlight<T> {
  const flights = new Map<string, Promise<T>>();
  return {
    run(key, work) {
      const existing = flights.get(key);
      if (existing) return { promise: existing, joined: true };
      const promise = work().finally(() => flights.delete(key));
      flights.set(key, promise);
      return { promise, joined: false };
    },
    has(key) {
      return flights.has(key);
    },
    get inFlight() {
      return flights.size;
    },
  };
}
