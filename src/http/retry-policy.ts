import { setTimeout as delay } from 'node:timers/promises';

/**
 * When and how long to wait before trying an outbound HTTP call again. Shared by the registry client
 * and the embedding download, so both back off the same way from the same upstream.
 */

export interface BackoffPolicy {
  /** The first retry waits up to this long; each later one up to twice the previous ceiling. */
  readonly baseDelayMs: number;
  /** Ceiling of the exponential part. */
  readonly maxDelayMs: number;
  /**
   * A Retry-After longer than this means "give up now": waiting that long inside a client's request
   * helps nobody, and the caller can serve stale data or a retryable error instead.
   */
  readonly maxRetryAfterMs: number;
}

export const defaultBackoffPolicy: BackoffPolicy = { baseDelayMs: 200, maxDelayMs: 5_000, maxRetryAfterMs: 30_000 };

/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"): a delay
 * drawn uniformly from [0, min(cap, base · 2^retry)). Full jitter spreads the retries of many clients that
 * failed together, which a fixed schedule would send back in one wave.
 */
export function backoffDelayMs(retry: number, random: () => number, policy: BackoffPolicy = defaultBackoffPolicy): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  return Math.floor(random() * ceiling);
}

/**
 * Retry-After (RFC 9110 §10.2.3): delta-seconds or an HTTP-date. Answers the wait in milliseconds, or
 * undefined when the header is absent or unreadable, so the caller falls back to its own backoff.
 */
export function parseRetryAfterMs(value: string | readonly string[] | undefined, now: number = Date.now()): number | undefined {
  const text = (typeof value === 'string' ? value : value?.[0])?.trim();
  if (text === undefined || text === '') return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Every HTTP-date form starts with a day name; Date.parse alone would take "-1" or "5 apples" as dates.
  if (!/^[A-Za-z]{3}/.test(text)) return undefined;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** Why one attempt failed in a way a later attempt may not. */
export interface TransientFailure {
  /** For messages: `answered 503`, `timed out after 5000 ms`, `connection error (ECONNREFUSED)`. */
  readonly description: string;
  readonly status?: number | undefined;
  /** The server's Retry-After, when it sent one. */
  readonly retryAfterMs?: number | undefined;
}

export type AttemptOutcome<T> =
  | { readonly kind: 'done'; readonly value: T }
  | { readonly kind: 'transient'; readonly failure: TransientFailure };

export type RetryOutcome<T> =
  | { readonly kind: 'done'; readonly value: T }
  | {
      readonly kind: 'gaveUp';
      readonly failure: TransientFailure;
      readonly attempts: number;
      /** `retryAfterTooLong`: the server asked for a wait beyond maxRetryAfterMs. */
      readonly reason: 'exhausted' | 'retryAfterTooLong';
    };

export interface RetryOptions {
  readonly maxAttempts: number;
  /** Injected by tests to record delays instead of waiting. */
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
  readonly random?: (() => number) | undefined;
  /** The caller's signal: an abort stops the waiting and is never retried. */
  readonly signal?: AbortSignal | undefined;
  readonly policy?: BackoffPolicy | undefined;
}

/**
 * Runs `attempt` until it is done, it throws (a permanent failure or the caller's abort, passed through
 * as is), or the attempts run out. Transient failures wait for the server's Retry-After when it sent
 * one, and for a jittered backoff otherwise.
 */
export async function withRetries<T>(
  attempt: (attemptNumber: number) => Promise<AttemptOutcome<T>>,
  options: RetryOptions,
): Promise<RetryOutcome<T>> {
  const maxAttempts = Math.max(1, Math.floor(options.maxAttempts));
  const policy = options.policy ?? defaultBackoffPolicy;
  const random = options.random ?? Math.random;
  for (let attemptNumber = 1; ; attemptNumber += 1) {
    options.signal?.throwIfAborted();
    const outcome = await attempt(attemptNumber);
    if (outcome.kind === 'done') return outcome;
    const { failure } = outcome;
    if (attemptNumber >= maxAttempts) return { kind: 'gaveUp', failure, attempts: attemptNumber, reason: 'exhausted' };
    if (failure.retryAfterMs !== undefined && failure.retryAfterMs > policy.maxRetryAfterMs) {
      return { kind: 'gaveUp', failure, attempts: attemptNumber, reason: 'retryAfterTooLong' };
    }
    const waitMs = failure.retryAfterMs ?? backoffDelayMs(attemptNumber - 1, random, policy);
    if (options.sleep) {
      await options.sleep(waitMs);
    } else {
      try {
        await delay(waitMs, undefined, options.signal ? { signal: options.signal } : undefined);
      } catch (error) {
        // The timer rejects with its own AbortError; callers expect their signal's reason.
        options.signal?.throwIfAborted();
        throw error;
      }
    }
  }
}

/** The end of a give-up message: `after 3 attempts (last: answered 503)`. */
export function describeGiveUp(outcome: Extract<RetryOutcome<unknown>, { kind: 'gaveUp' }>, policy: BackoffPolicy = defaultBackoffPolicy): string {
  if (outcome.reason === 'retryAfterTooLong') {
    const seconds = Math.ceil((outcome.failure.retryAfterMs ?? 0) / 1000);
    return `${outcome.failure.description} and asked to retry after ${seconds} s, longer than the ${policy.maxRetryAfterMs / 1000} s clipgate waits`;
  }
  const attempts = outcome.attempts === 1 ? '1 attempt' : `${outcome.attempts} attempts`;
  return `${outcome.failure.description} (${attempts})`;
}
