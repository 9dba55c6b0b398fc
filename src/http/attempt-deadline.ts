import { request, type Dispatcher } from 'undici';
import type { TransientFailure } from './retry-policy.js';

/**
 * One attempt of an outbound call: a signal that fires when the attempt's own deadline passes or the
 * caller aborts, whichever comes first, and the means to tell the two apart afterwards — a deadline is
 * worth another attempt, the caller's abort never is.
 *
 * A timer cleared in `finish` rather than AbortSignal.timeout: under load, thousands of finished attempts
 * would otherwise each keep a pending timer alive until its deadline.
 */
export interface AttemptDeadline {
  readonly signal: AbortSignal;
  /**
   * Turns an error thrown during the attempt into a transient failure (deadline passed, connection
   * failed), or rethrows it: the caller's abort reason, or an error that is no network failure at all.
   */
  failureOf(error: unknown): TransientFailure;
  finish(): void;
}

export function startAttempt(timeoutMs: number, callerSignal: AbortSignal | undefined): AttemptDeadline {
  callerSignal?.throwIfAborted();
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`timed out after ${timeoutMs} ms`));
  }, timeoutMs);
  const onCallerAbort = (): void => controller.abort(callerSignal?.reason);
  callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
  return {
    signal: controller.signal,
    failureOf(error) {
      if (callerSignal?.aborted) throw callerSignal.reason;
      if (timedOut) return { description: `timed out after ${timeoutMs} ms` };
      const code = networkErrorCode(error);
      if (code === undefined) throw error;
      return { description: `connection error (${code})` };
    },
    finish() {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onCallerAbort);
    },
  };
}

/**
 * undici's errors (`UND_ERR_SOCKET`, `UND_ERR_CONNECT_TIMEOUT`, …) and the system's (`ECONNREFUSED`,
 * `ENOTFOUND`, …) carry a string code; anything without one, or undici's complaint about its own
 * arguments, is a bug that retrying cannot fix.
 */
function networkErrorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  const { code } = error;
  if (typeof code !== 'string' || code === 'UND_ERR_INVALID_ARG') return undefined;
  return code;
}

export type SentRequest =
  | { readonly kind: 'response'; readonly response: Dispatcher.ResponseData }
  | { readonly kind: 'transient'; readonly failure: TransientFailure };

/** A GET within the attempt's deadline; a timeout or network failure comes back as a transient failure. */
export async function getWithin(
  deadline: AttemptDeadline,
  url: string | URL,
  headers: Record<string, string>,
  dispatcher: Dispatcher | undefined,
): Promise<SentRequest> {
  try {
    const response = await request(url, { method: 'GET', headers, signal: deadline.signal, ...(dispatcher && { dispatcher }) });
    return { kind: 'response', response };
  } catch (error) {
    return { kind: 'transient', failure: deadline.failureOf(error) };
  }
}
