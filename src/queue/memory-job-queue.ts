import pLimit from 'p-limit';
import { PermanentJobError, type JobQueue, type JobQueueOptions } from '../contracts/job-queue.js';

/**
 * The queue in this process, for a gateway without Redis: the same contract as BullMQ's (concurrency,
 * attempts with doubling backoff, a jobId added twice runs once) without durability — a restart loses what
 * was waiting or running, and the README says so.
 */
export function createMemoryJobQueue<T>(options: JobQueueOptions<T>): JobQueue<T> {
  const limit = pLimit(options.concurrency);
  const known = new Set<string>();
  const running = new Set<Promise<void>>();
  // Backoff waits, ended early by close (the job then ends as exhausted).
  const waits = new Map<NodeJS.Timeout, () => void>();
  let closed = false;

  // Jobs waiting out a retry's backoff.
  let delayed = 0;

  const run = async (data: T, addedAt: number): Promise<void> => {
    options.onFirstAttempt?.(Date.now() - addedAt);
    for (let attempt = 1; ; attempt++) {
      try {
        await options.process(data, attempt);
        return;
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        if (error instanceof PermanentJobError || attempt >= options.attempts || closed) return options.exhausted(data, reason);
        delayed++;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            waits.delete(timer);
            resolve();
          }, options.backoffMs * 2 ** (attempt - 1));
          waits.set(timer, resolve);
        }).finally(() => delayed--);
      }
    }
  };

  return {
    async add(data, jobId) {
      if (closed) throw new Error('the queue is closed');
      const waiting = limit.pendingCount;
      if (known.has(jobId)) return { waiting };
      known.add(jobId);
      const addedAt = Date.now();
      const job = limit(() => run(data, addedAt)).finally(() => {
        known.delete(jobId);
        running.delete(job);
      });
      running.add(job);
      return { waiting };
    },
    async counts() {
      return { waiting: limit.pendingCount, active: limit.activeCount - delayed, delayed };
    },
    async close() {
      closed = true;
      for (const [timer, resolve] of waits) {
        clearTimeout(timer);
        resolve();
      }
      waits.clear();
      limit.clearQueue();
      await Promise.allSettled([...running]);
    },
  };
}
