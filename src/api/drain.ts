import { WorkCancelled, type CancellationSource } from '../contracts/cancellation.js';
import { createError, type ApiError, type ErrorDetails } from '../errors.js';

/**
 * The gateway's drain (SIGTERM): it stops being ready at once, so the load balancer sends no more, but keeps
 * listening — health probes answer 503, new work gets a retryable shuttingDown; the work in flight gets until
 * the grace ends to finish; then what is left is cancelled, each task answered with a retryable error and its
 * worker job cancelled. No request is ever reset.
 */
export interface Drain {
  readonly draining: boolean;
  /** Registers a request's (or a WebSocket frame's) work; returns what unregisters it. */
  track(work: CancellationSource): () => void;
  readonly inFlight: number;
  begin(): void;
  /** Resolves once nothing is in flight, or cancels what is left when `graceMs` has passed and then resolves. */
  settle(graceMs: number, answerMs?: number): Promise<'finished' | 'cancelled'>;
}

export function createDrain(): Drain {
  let draining = false;
  const work = new Set<CancellationSource>();
  let onIdle: (() => void) | undefined;
  const untrack = (source: CancellationSource) => {
    work.delete(source);
    if (work.size === 0) onIdle?.();
  };
  const idle = (timeoutMs: number) =>
    new Promise<boolean>((resolve) => {
      if (work.size === 0) return resolve(true);
      const timer = setTimeout(() => resolve(false), timeoutMs);
      onIdle = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });

  return {
    get draining() {
      return draining;
    },
    get inFlight() {
      return work.size;
    },
    track(source) {
      work.add(source);
      return () => untrack(source);
    },
    begin() {
      draining = true;
    },
    async settle(graceMs, answerMs = 5000) {
      draining = true;
      if (await idle(graceMs)) return 'finished';
      const reason = new WorkCancelled('shuttingDown', `this gateway replica is shutting down and its ${Math.round(graceMs / 1000)} s grace for work in flight has passed`);
      for (const source of [...work]) source.cancel(reason);
      // The cancelled tasks answer (retryably) and their workers are told; give that a moment.
      await idle(answerMs);
      return 'cancelled';
    },
  };
}

/** New work on a replica that drains: refused at once, retryably, so that the client goes to another replica. */
export function refusedWhileDraining(details: ErrorDetails = {}): ApiError {
  return createError('shuttingDown', 'This gateway replica is shutting down and takes no new tasks; retry, and another replica will take them.', { ...details, retryAfter: 1 });
}
