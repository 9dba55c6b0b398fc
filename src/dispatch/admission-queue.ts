import type { Cancellation } from '../contracts/cancellation.js';

/**
 * The bounded waiting room in front of the workers: when every eligible worker is full, a task waits here,
 * first come first served, for at most `maxWaitMs`; past `maxLength` waiting tasks it is refused at once.
 * Bounded in both ways so a saturated pool answers 429/503 instead of piling up memory.
 */

export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
  constructor(readonly position: number) {
    super(`the queue is full (${position - 1} tasks waiting)`);
  }
}

export class QueueTimeoutError extends Error {
  override readonly name = 'QueueTimeoutError';
  constructor(
    readonly position: number,
    readonly waitedMs: number,
  ) {
    super(`no worker freed up within ${waitedMs} ms (the task was number ${position} in the queue)`);
  }
}

/** What a waiter's claim attempt gives: the thing it waited for, nothing yet, or a reason to stop waiting. */
export type Claim<T> = { readonly kind: 'taken'; readonly value: T } | { readonly kind: 'wait' } | { readonly kind: 'fail'; readonly error: Error };

interface Waiter<T> {
  readonly claim: () => Claim<T>;
  readonly likeness: (() => string | undefined) | undefined;
  readonly settle: (outcome: { value: T } | { error: unknown }) => void;
}

export interface AdmissionQueue<T> {
  /**
   * Waits until `claim` takes something; throws QueueFullError, QueueTimeoutError or the cancellation's reason.
   * `likeness`: waiters of equal likeness get the same answer until something is taken, so once one of them
   * waits in a pump the others are not asked (undefined: always asked). Without it, a queue of thousands for a
   * full worker, beside a free one that serves other models, asked every one of them on every finished job.
   */
  wait(claim: () => Claim<T>, cancellation: Cancellation, maxWaitMs: number, likeness?: () => string | undefined): Promise<T>;
  /** Offers freed capacity to the waiters, oldest first, until `hasRoom` says none is left. */
  pump(): void;
  /**
   * Asks every waiter, room or not: what they wait for changed (a worker went away, its breaker opened, its
   * health says other things), so a claim may now fail and should say so at once rather than at its deadline.
   */
  pumpAll(): void;
  readonly length: number;
}

/**
 * `hasRoom`: whether any claim could take something now. Without it a pump asks every waiter; with it a pump
 * behind a full pool asks none: at saturation every finished job pumps, and asking thousands of waiters each
 * time made the queue quadratic (a 2,400-deep queue cost 0.6 ms of CPU per task).
 */
export function createAdmissionQueue<T>(maxLength: number, hasRoom: () => boolean = () => true): AdmissionQueue<T> {
  // Insertion-ordered, O(1) removal, and safe to delete from while iterating.
  const waiters = new Set<Waiter<T>>();

  function offer(everyone: boolean): void {
    // Likenesses that answered `wait` since the last take: a take changes what the others would get.
    let waiting: Set<string> | undefined;
    for (const waiter of waiters) {
      if (!everyone && !hasRoom()) return;
      const likeness = waiter.likeness?.();
      if (likeness !== undefined && waiting?.has(likeness)) continue;
      const claim = waiter.claim();
      if (claim.kind === 'taken') {
        waiter.settle({ value: claim.value });
        waiting = undefined;
      } else if (claim.kind === 'fail') {
        waiter.settle({ error: claim.error });
      } else if (likeness !== undefined) {
        (waiting ??= new Set()).add(likeness);
      }
    }
  }

  return {
    wait(claim, cancellation, maxWaitMs, likeness) {
      if (waiters.size >= maxLength) return Promise.reject(new QueueFullError(waiters.size + 1));
      if (cancellation.reason) return Promise.reject(cancellation.reason);
      const position = waiters.size + 1;
      const started = Date.now();
      return new Promise<T>((resolve, reject) => {
        const cleanUp = () => {
          clearTimeout(timer);
          stopListening();
          waiters.delete(waiter);
        };
        const waiter: Waiter<T> = {
          claim,
          likeness,
          settle(outcome) {
            cleanUp();
            if ('value' in outcome) resolve(outcome.value);
            else reject(outcome.error);
          },
        };
        const timer = setTimeout(() => waiter.settle({ error: new QueueTimeoutError(position, Date.now() - started) }), maxWaitMs);
        const stopListening = cancellation.onCancel((reason) => waiter.settle({ error: reason }));
        waiters.add(waiter);
      });
    },

    pump() {
      offer(false);
    },

    pumpAll() {
      offer(true);
    },

    get length() {
      return waiters.size;
    },
  };
}
