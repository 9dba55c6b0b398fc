/**
 * A per-worker circuit breaker: after `failureThreshold` consecutive failures the worker gets no work for
 * `cooldownMs` (open); then one trial job is let through (half-open) — its success closes the breaker,
 * its failure opens it again for another cool-down.
 */
export type BreakerState = 'closed' | 'open' | 'half-open';

export interface CircuitBreaker {
  /** Whether a job may be sent now; in half-open state only one trial at a time. */
  canAttempt(): boolean;
  /** Claims the half-open trial slot; call when a job is actually sent. */
  onAttempt(): void;
  onSuccess(): void;
  onFailure(): void;
  /** A job that says nothing about the worker's health (cancelled, refused as busy) ended; frees the trial slot. */
  onNeutral(): void;
  /** The worker's health turned good after an outage: an open breaker lets a trial job through at once. */
  onRecovered(): void;
  state(): BreakerState;
}

export interface BreakerOptions {
  readonly failureThreshold: number;
  readonly cooldownMs: number;
  readonly clock: () => number;
}

export function createCircuitBreaker(options: BreakerOptions): CircuitBreaker {
  let failures = 0;
  let openedAt: number | undefined;
  let trialInFlight = false;

  const state = (): BreakerState => {
    if (openedAt === undefined) return 'closed';
    return options.clock() - openedAt >= options.cooldownMs ? 'half-open' : 'open';
  };

  return {
    canAttempt() {
      const current = state();
      return current === 'closed' || (current === 'half-open' && !trialInFlight);
    },
    onAttempt() {
      if (state() === 'half-open') trialInFlight = true;
    },
    onSuccess() {
      failures = 0;
      openedAt = undefined;
      trialInFlight = false;
    },
    onNeutral() {
      trialInFlight = false;
    },
    onRecovered() {
      if (openedAt !== undefined) openedAt = options.clock() - options.cooldownMs;
    },
    onFailure() {
      failures++;
      trialInFlight = false;
      if (state() === 'half-open' || failures >= options.failureThreshold) openedAt = options.clock();
    },
    state,
  };
}
