/**
 * Cancellation of a request's jobs when its client goes away. A plain callback list instead of an
 * AbortController: every task subscribes and unsubscribes on the hot path, and EventTarget listeners cost
 * microseconds each for a feature that almost never fires.
 */
export interface Cancellation {
  readonly cancelled: boolean;
  readonly reason: Error | undefined;
  /** Calls `listener` once if and when cancelled; returns what removes it. */
  onCancel(listener: (reason: Error) => void): () => void;
}

export interface CancellationSource extends Cancellation {
  cancel(reason: Error): void;
}

export function createCancellation(): CancellationSource {
  return new CallbackCancellation();
}

/** A class rather than an object of closures: one is made per request, and its methods can be shared. */
class CallbackCancellation implements CancellationSource {
  private cause: Error | undefined;
  private listeners: Set<(reason: Error) => void> | undefined;

  get cancelled(): boolean {
    return this.cause !== undefined;
  }

  get reason(): Error | undefined {
    return this.cause;
  }

  onCancel(listener: (reason: Error) => void): () => void {
    if (this.cause) {
      listener(this.cause);
      return noop;
    }
    const listeners = (this.listeners ??= new Set());
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  cancel(cause: Error): void {
    if (this.cause) return;
    this.cause = cause;
    const listeners = this.listeners;
    this.listeners = undefined;
    for (const listener of listeners ?? []) listener(cause);
  }
}

const noop = () => undefined;

/** For work that no client can cancel. */
export const neverCancelled: Cancellation = { cancelled: false, reason: undefined, onCancel: () => () => undefined };

/** Why work was cancelled: each cause ends a task with its own error. */
export type CancelCause = 'clientGone' | 'shuttingDown' | 'sessionExpired';

export class WorkCancelled extends Error {
  override readonly name = 'WorkCancelled';
  constructor(
    readonly why: CancelCause,
    message: string,
  ) {
    super(message);
  }
}

/** Why work was cancelled; a reason that is not a WorkCancelled is a client gone (the oldest cause). */
export function causeOf(reason: Error | undefined): CancelCause {
  return reason instanceof WorkCancelled ? reason.why : 'clientGone';
}
