/**
 * A durable job queue (DESIGN §8): async tasks and webhook deliveries go through one. BullMQ on Redis when
 * REDIS_URL is set — a job outlives the replica that accepted it, and one whose replica died mid-run is taken
 * up again by another (stalled-job recovery) — or in this process otherwise, where a restart loses them.
 */

export interface JobQueue<T> {
  /**
   * Accepted once this resolves. A jobId already in the queue adds nothing (a resend, a recovered replica
   * enqueueing again). `waiting`: jobs waiting before this one, as far as the queue can tell.
   */
  add(data: T, jobId: string): Promise<{ readonly waiting: number }>;
  /** How many jobs are where, across every replica sharing the queue, for /metrics. */
  counts(): Promise<JobCounts>;
  /** Stops taking jobs; waits for the running ones. */
  close(): Promise<void>;
}

export interface JobCounts {
  readonly waiting: number;
  readonly active: number;
  /** Waiting out a retry's backoff. */
  readonly delayed: number;
}

/**
 * Runs one job. Throwing retries it (with backoff, up to the queue's attempts) — a store not answering, a
 * webhook receiver down; `PermanentJobError` ends it at once. `attempt` counts from 1.
 */
export type JobProcessor<T> = (data: T, attempt: number) => Promise<void>;

export interface JobQueueOptions<T> {
  readonly name: string;
  readonly process: JobProcessor<T>;
  /** Jobs one replica runs at once. */
  readonly concurrency: number;
  readonly attempts: number;
  /** The first retry's delay; each next one doubles it. */
  readonly backoffMs: number;
  /** After the last attempt failed (or the job was lost more often than allowed): record why. */
  readonly exhausted: (data: T, reason: string) => Promise<void>;
  /** As text, for Redis (seeds are bigints at times). */
  readonly encode: (data: T) => string;
  readonly decode: (text: string) => T;
  /** A job's first attempt begins, this long after it was added (for /metrics). */
  readonly onFirstAttempt?: (waitedMs: number) => void;
}

/** The job cannot succeed however often it is tried (a refused target, a missing record). */
export class PermanentJobError extends Error {
  override readonly name = 'PermanentJobError';
}
