import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { RedisTarget } from '../config.js';
import { createRedisClient } from '../cache/redis-clients.js';
import { PermanentJobError, type JobQueue, type JobQueueOptions } from '../contracts/job-queue.js';

export interface BullJobQueueOptions<T> extends JobQueueOptions<T> {
  /** The configured Redis (one, a Cluster, or through Sentinel), or a REDIS_URL. */
  readonly redis: RedisTarget | string;
  /** Key prefix; its hash tag puts every key of the queue in one Redis Cluster slot (BullMQ's scripts need it). */
  readonly prefix: string;
  /**
   * How long a running job's lock lasts without renewal: a replica that dies (SIGKILL, power) leaves its jobs
   * locked this long before another replica takes them up again.
   */
  readonly lockMs: number;
  /** How often a job may be lost with its replica before it ends as failed. */
  readonly maxStalls: number;
  readonly logger: { warn(object: object, message: string): void };
}

interface StoredJob {
  readonly payload: string;
}

/**
 * The queue on BullMQ: the producer and a consumer in every replica, on their own Redis connections (a
 * worker blocks on its connection, and BullMQ wants commands retried forever there). A job whose replica
 * died is found stalled after `lockMs` and run again by a live one; processors make that safe by writing
 * their result once (the ledger's final write is conditional).
 */
export function createBullJobQueue<T>(options: BullJobQueueOptions<T>): JobQueue<T> {
  const connection = () => {
    // null: BullMQ refuses a worker connection (or a Cluster's node options) that gives up on a command.
    const redis = createRedisClient(options.redis, { maxRetriesPerRequest: null, connectionName: `clipgate-${options.name}` });
    // An outage is logged once by the gateway's own Redis connection; this one just reconnects.
    redis.on('error', () => undefined);
    return redis;
  };
  // BullMQ's own start-up commands need the offline queue; a Redis that is down fails an add by ADD_TIMEOUT_MS instead.
  const producerConnection = createRedisClient(options.redis, { maxRetriesPerRequest: 1, connectTimeout: 2000, connectionName: `clipgate-${options.name}-producer` });
  producerConnection.on('error', () => undefined);
  // (The same for the producer: an outage shows as a failed add, answered taskQueueUnavailable.)
  const queue = new Queue<StoredJob>(options.name, { connection: producerConnection, prefix: options.prefix });
  queue.on('error', (error) => options.logger.warn({ err: error, queue: options.name }, 'job queue error'));
  const worker = new Worker<StoredJob>(
    options.name,
    async (job: Job<StoredJob>) => {
      // The first run only: not a retry, nor a run again after its replica died (a stall).
      if (job.attemptsMade === 0 && job.stalledCounter === 0 && options.onFirstAttempt) options.onFirstAttempt(Date.now() - job.timestamp);
      try {
        await options.process(options.decode(job.data.payload), job.attemptsMade + 1);
      } catch (error) {
        if (error instanceof PermanentJobError) throw new UnrecoverableError(error.message);
        throw error;
      }
    },
    {
      connection: connection(),
      prefix: options.prefix,
      concurrency: options.concurrency,
      lockDuration: options.lockMs,
      stalledInterval: Math.max(500, Math.floor(options.lockMs / 2)),
      maxStalledCount: options.maxStalls,
      autorun: true,
    },
  );
  worker.on('error', (error) => options.logger.warn({ err: error, queue: options.name }, 'job queue consumer error'));
  worker.on('failed', (job, error) => {
    if (!job) return;
    const final = error instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1) || /stalled more than/i.test(error.message);
    if (!final) return;
    options.exhausted(options.decode(job.data.payload), error.message).catch((recordError: unknown) => options.logger.warn({ err: recordError, queue: options.name, jobId: job.id }, 'a failed job could not be recorded'));
  });

  return {
    async add(data, jobId) {
      const adding = queue.add(
        'job',
        { payload: options.encode(data) },
        {
          jobId,
          attempts: options.attempts,
          backoff: { type: 'exponential', delay: options.backoffMs },
          // The ledger keeps results; a finished job stays only as long as its id must stop a duplicate add.
          removeOnComplete: { age: 3600 },
          removeOnFail: { age: 24 * 3600 },
        },
      );
      await withinTime(adding, ADD_TIMEOUT_MS, 'the job queue (Redis) did not take the job in time');
      return { waiting: await withinTime(queue.getWaitingCount(), ADD_TIMEOUT_MS, 'the job queue (Redis) did not answer in time') };
    },
    async counts() {
      const counts = await withinTime(queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized'), ADD_TIMEOUT_MS, 'the job queue (Redis) did not answer in time');
      return { waiting: (counts['waiting'] ?? 0) + (counts['prioritized'] ?? 0), active: counts['active'] ?? 0, delayed: counts['delayed'] ?? 0 };
    },
    async close() {
      // A queue whose Redis never came up rejects its close too; shutting down goes on regardless.
      const quietly = (closing: Promise<void>) => closing.catch((error: unknown) => options.logger.warn({ err: error, queue: options.name }, 'job queue did not close cleanly'));
      // Closed while BullMQ still starts up, its connections reject a promise nobody holds: let it finish first
      // (bounded: a Redis that is down never lets it).
      await Promise.all([worker.waitUntilReady(), queue.waitUntilReady()].map((ready) => withinTime(ready, ADD_TIMEOUT_MS, 'not ready').catch(() => undefined)));
      await quietly(worker.close());
      await quietly(queue.close());
      producerConnection.disconnect();
    },
  };
}

const ADD_TIMEOUT_MS = 3000;

function withinTime<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)));
  // A late rejection of the work itself must not go unhandled.
  work.catch(() => undefined);
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
