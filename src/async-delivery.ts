import type { Config, RedisTarget } from './config.js';
import type { Dispatcher } from './contracts/dispatcher.js';
import type { JobCounts, JobQueue, JobQueueOptions } from './contracts/job-queue.js';
import { silentMetrics, type MetricsRecorder } from './contracts/metrics-recorder.js';
import type { QueuedTask } from './contracts/queued-task.js';
import type { TaskLedger } from './contracts/task-ledger.js';
import type { Webhooks } from './contracts/webhooks.js';
import { createMemoryTaskLedger } from './ledger/memory-task-ledger.js';
import { createRedisTaskLedger } from './ledger/redis-task-ledger.js';
import type { RedisConnection } from './cache/redis-connection.js';
import { createMemoryJobQueue } from './queue/memory-job-queue.js';
import { asyncTaskQueueOptions } from './tasks/image-inference/async-task-processor.js';
import { createWebhooks } from './webhooks/webhooks.js';
import type { WebhookLookup } from './webhooks/webhook-target.js';

/** What async delivery is made of: the ledger, the queue of async tasks (and its consumer) and webhooks. */
export interface AsyncDelivery {
  readonly ledger: TaskLedger;
  readonly asyncTasks: JobQueue<QueuedTask>;
  /** Absent without WEBHOOK_SIGNING_SECRET: a webhookURL is then refused. */
  readonly webhooks: Webhooks | undefined;
  /** Every queue by name (async tasks, webhook deliveries), for /metrics. */
  readonly queues: ReadonlyMap<string, { counts(): Promise<JobCounts> }>;
  /** Stops consuming (running jobs finish), then closes the queues. Before the dispatcher closes. */
  close(): Promise<void>;
}

export interface AsyncDeliveryOptions {
  readonly config: Config;
  readonly dispatcher: Dispatcher;
  readonly logger: { warn(object: object, message: string): void };
  /** With Redis: ledger in Redis, queues on BullMQ (durable, shared by every replica). In process otherwise. */
  readonly redis?: { readonly connection: RedisConnection; readonly target: RedisTarget; readonly namespace: string };
  /** Tests resolve names their own way. */
  readonly webhookLookup?: WebhookLookup;
  readonly recorder?: MetricsRecorder;
}

export async function createAsyncDelivery(options: AsyncDeliveryOptions): Promise<AsyncDelivery> {
  const { config, redis, logger } = options;
  const recorder = options.recorder ?? silentMetrics;
  // BullMQ is loaded only where it is used: its module graph alone doubled the garbage collector's time on
  // the sync path of a gateway without Redis (bench:dispatch).
  const bull = redis ? await import('./queue/bullmq-job-queue.js') : undefined;
  const ledger = redis
    ? createRedisTaskLedger({ redis: redis.connection, namespace: redis.namespace, ttlSeconds: config.taskLedgerTtlSeconds, logger })
    : createMemoryTaskLedger({ ttlSeconds: config.taskLedgerTtlSeconds });
  const queues = new Map<string, JobQueue<never>>();
  const createQueue = <T>(queueOptions: JobQueueOptions<T>): JobQueue<T> => {
    const observed = { ...queueOptions, onFirstAttempt: (waitedMs: number) => recorder.jobQueueWait(queueOptions.name, waitedMs / 1000) };
    const queue = redis && bull
      ? bull.createBullJobQueue({ ...observed, redis: redis.target, prefix: `${redis.namespace}:{queue}`, lockMs: config.async.lockMs, maxStalls: 3, logger })
      : createMemoryJobQueue(observed);
    queues.set(queueOptions.name, queue);
    return queue;
  };
  const { webhooks: webhookConfig } = config;
  const webhooks = webhookConfig.signingSecret
    ? createWebhooks({
        signingSecret: webhookConfig.signingSecret,
        policy: { requireHttps: webhookConfig.requireHttps, allowedHosts: webhookConfig.allowedHosts },
        timeoutMs: webhookConfig.timeoutMs,
        maxAttempts: webhookConfig.maxAttempts,
        backoffMs: webhookConfig.backoffMs,
        ledger,
        createQueue,
        logger,
        recorder,
        ...(options.webhookLookup && { lookup: options.webhookLookup }),
      })
    : undefined;
  const asyncTasks = createQueue(
    asyncTaskQueueOptions({ dispatcher: options.dispatcher, ledger, ...(webhooks && { webhooks }), concurrency: config.async.concurrency, maxAttempts: config.async.maxAttempts, logger }),
  );
  return {
    ledger,
    asyncTasks,
    webhooks,
    queues,
    async close() {
      await asyncTasks.close();
      await webhooks?.close();
    },
  };
}
