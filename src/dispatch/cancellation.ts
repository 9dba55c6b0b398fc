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
  let reason: Error | undefined;
  let listeners: Set<(reason: Error) => void> | undefined;
  return {
    get cancelled() {
      return reason !== undefined;
    },
    get reason() {
      return reason;
    },
    onCancel(listener) {
      if (reason) {
        listener(reason);
        return () => undefined;
      }
      listeners ??= new Set();
      listeners.add(listener);
      return () => listeners?.delete(listener);
    },
    cancel(cause) {
      if (reason) return;
      reason = cause;
      for (const listener of listeners ?? []) listener(cause);
      listeners = undefined;
    },
  };
}

/** For work that no client can cancel. */
export const neverCancelled: Cancellation = { cancelled: false, reason: undefined, onCancel: () => () => undefined };
