import { stringify } from 'lossless-json';
import type { JobQueue, JobQueueOptions } from '../contracts/job-queue.js';
import { principalTag } from '../contracts/principal.js';
import { PermanentJobError } from '../contracts/job-queue.js';
import type { LedgerEntry, TaskLedger } from '../contracts/task-ledger.js';
import type { MetricsRecorder } from '../contracts/metrics-recorder.js';
import type { Webhooks } from '../contracts/webhooks.js';
import { createError } from '../errors.js';
import { createWebhookDelivery, type WebhookDelivery } from './deliver-webhook.js';
import { signWebhook, WEBHOOK_SIGNATURE_HEADER } from './webhook-signature.js';
import { checkWebhookTarget, type WebhookLookup, type WebhookTargetPolicy } from './webhook-target.js';

/** One POST owed to a webhook: a result of a final task (by imageUUID), or its errors. */
export interface WebhookJob {
  readonly principal: string;
  readonly taskUUID: string;
  readonly webhookURL: string;
  /** An imageUUID, or `errors`. */
  readonly item: string;
  readonly deliveryId: string;
}

export const WEBHOOK_DELIVERY_ID_HEADER = 'clipgate-delivery-id';

export interface WebhooksOptions {
  readonly signingSecret: string;
  readonly policy: WebhookTargetPolicy;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly backoffMs: number;
  readonly ledger: TaskLedger;
  readonly createQueue: (options: JobQueueOptions<WebhookJob>) => JobQueue<WebhookJob>;
  readonly logger: { warn(object: object, message: string): void };
  readonly lookup?: WebhookLookup;
  readonly clock?: () => number;
  readonly recorder?: MetricsRecorder;
}

/**
 * Webhooks on the job queue: each POST is a job of its own (so one receiver's outage retries only its
 * deliveries, with doubling backoff, and survives the replica), signed over a timestamp and the body, with
 * a delivery id that stays the same across retries so a receiver can drop a repeat. The body is read from
 * the ledger when the POST goes out, so the queue never holds images; each attempt is recorded there.
 */
export function createWebhooks(options: WebhooksOptions): Webhooks & { close(): Promise<void> } {
  const clock = options.clock ?? Date.now;
  const delivery: WebhookDelivery = createWebhookDelivery({ policy: options.policy, timeoutMs: options.timeoutMs, maxRedirects: 3, ...(options.lookup && { lookup: options.lookup }) });
  const queue = options.createQueue({
    name: 'clipgate-webhooks',
    concurrency: 16,
    attempts: options.maxAttempts,
    backoffMs: options.backoffMs,
    encode: (job) => JSON.stringify(job),
    decode: (text) => JSON.parse(text) as WebhookJob,
    exhausted: async (job, reason) => options.logger.warn({ taskUUID: job.taskUUID, deliveryId: job.deliveryId, reason }, 'webhook delivery gave up'),
    process: async (job, attempt) => {
      const entry = await options.ledger.get(job.principal, job.taskUUID);
      if (!entry) throw new PermanentJobError(`task ${job.taskUUID} has no record any more`);
      const body = bodyOf(entry, job.item);
      if (body === undefined) throw new PermanentJobError(`task ${job.taskUUID} has no result ${job.item}`);
      const at = clock();
      const posted = performance.now();
      const outcome = await delivery.deliver(job.webhookURL, body, {
        [WEBHOOK_SIGNATURE_HEADER]: signWebhook(options.signingSecret, body, Math.floor(at / 1000)),
        [WEBHOOK_DELIVERY_ID_HEADER]: job.deliveryId,
        'clipgate-attempt': String(attempt),
      });
      options.recorder?.webhookAttempt(outcome.ok ? 'delivered' : 'failed', (performance.now() - posted) / 1000);
      await options.ledger.addWebhookAttempt(job.principal, job.taskUUID, {
        imageUUID: job.item,
        attempt,
        at,
        delivered: outcome.ok,
        ...(outcome.status !== undefined && { status: outcome.status }),
        ...(!outcome.ok && { reason: outcome.reason }),
      });
      if (outcome.ok) return;
      if (!outcome.retryable) throw new PermanentJobError(outcome.reason);
      throw new Error(outcome.reason);
    },
  });
  return {
    async refusal(url, details) {
      const check = await checkWebhookTarget(url, options.policy, options.lookup);
      if (check.ok) return undefined;
      return createError('webhookTargetRefused', `clipgate will not call this webhookURL: ${check.reason}.`, { ...details, parameter: 'webhookURL' });
    },
    async announce(principal, entry, webhookURL) {
      const items = entry.state === 'error' ? ['errors'] : entry.results.map((result) => result.imageUUID);
      await Promise.all(
        items.map((item) => {
          const deliveryId = `${entry.taskUUID}.${item}`;
          return queue.add({ principal, taskUUID: entry.taskUUID, webhookURL, item, deliveryId }, `${principalTag(principal)}-${deliveryId}`);
        }),
      );
    },
    async close() {
      await queue.close();
      await delivery.close();
    },
  };
}

/** Runware's shape: what getResponse would answer for that one result (or the task's errors). */
function bodyOf(entry: LedgerEntry, item: string): string | undefined {
  if (item === 'errors') return entry.errors.length > 0 ? stringify({ errors: entry.errors }) : undefined;
  const result = entry.results.find((candidate) => candidate.imageUUID === item);
  return result && stringify({ data: [{ ...result, status: 'success' }] });
}
