import type { ApiError } from '../errors.js';
import type { ImageResult } from './task-result.js';

/**
 * The task ledger (DESIGN §8): what became of each task a key sent — `processing` while it runs, then
 * `success` with its results or `error` with its errors — kept for a TTL, keyed by the principal and the
 * taskUUID, so one key never reads another's. The image-inference task type claims a task here before it
 * runs (so a taskUUID sent again attaches to it instead of generating again); getResponse, the async
 * consumer, webhooks and the event stream read it. In Redis when REDIS_URL is set (any replica answers for
 * any task), in process otherwise.
 */

export type LedgerState = 'processing' | 'success' | 'error';

export interface LedgerEntry {
  readonly taskUUID: string;
  readonly taskType: string;
  readonly state: LedgerState;
  readonly results: readonly ImageResult[];
  readonly errors: readonly ApiError[];
  /** Epoch milliseconds. */
  readonly updatedAt: number;
  /** A digest of the task as sent: the same taskUUID with another body is a conflict, not a retry. */
  readonly fingerprint?: string;
  readonly deliveryMethod?: 'sync' | 'async';
  /**
   * Whether `results` carry their inline bytes (async tasks, fetched later) or not (sync tasks, whose answer
   * carried them; the ledger keeps their ids and seeds).
   */
  readonly inlineKept?: boolean;
}

export type LedgerClaimRequest = Pick<LedgerEntry, 'taskUUID' | 'taskType' | 'fingerprint' | 'deliveryMethod'> & {
  /**
   * Epoch ms: a sync task's `processing` record last written before this was abandoned (its replica died; a
   * sync task ends within TASK_TIMEOUT_MS) and may be claimed again. Async records are never taken over:
   * their jobs are recovered by the queue.
   */
  readonly abandonedBefore?: number;
};

/** `claimed`: this request runs the task. `taken`: the key sent this taskUUID before; there is its record. */
export type LedgerClaim = { readonly kind: 'claimed' } | { readonly kind: 'taken'; readonly entry: LedgerEntry };

/** What a watcher of a task sees (GET /v1/tasks/{taskUUID}/events), in order. */
export type TaskEvent =
  | { readonly type: 'queued'; readonly position: number }
  | { readonly type: 'started' }
  | { readonly type: 'progress'; readonly step: number; readonly steps: number }
  | { readonly type: 'finished'; readonly state: 'success' | 'error' };

export interface StoredTaskEvent {
  /** Increasing within a task: an SSE client resumes after it (Last-Event-ID). */
  readonly id: string;
  readonly event: TaskEvent;
}

/** One attempt to POST a result to a task's webhookURL. */
export interface WebhookAttemptRecord {
  readonly imageUUID: string;
  readonly attempt: number;
  /** Epoch milliseconds. */
  readonly at: number;
  readonly delivered: boolean;
  readonly status?: number;
  readonly reason?: string;
}

export interface TaskLedger {
  /**
   * In one atomic step: records the task as `processing` — unless the key sent this taskUUID before and
   * that task did not end in error, whose record comes back instead (a task that failed may be sent again, and
   * so may a sync task whose record was abandoned: see `abandonedBefore`).
   * The in-process ledger answers without a promise: this is on every task's path.
   */
  claim(principal: string, request: LedgerClaimRequest): LedgerClaim | Promise<LedgerClaim>;
  /**
   * The task has given everything: its results and errors, in one write. Written once: when the record is
   * final already (a job run again after its replica died), that record stays and is what comes back.
   */
  finished(principal: string, entry: Omit<LedgerEntry, 'updatedAt'>): Promise<LedgerEntry>;
  /** Undefined when the key never sent the task, or its record has expired. */
  get(principal: string, taskUUID: string): Promise<LedgerEntry | undefined>;
  /** Adds to the task's event stream (without waiting: events are advice, the record is the truth). */
  addEvent(principal: string, taskUUID: string, event: TaskEvent): void;
  /** The task's events after `afterId` (all when absent), oldest first. */
  events(principal: string, taskUUID: string, afterId?: string): Promise<readonly StoredTaskEvent[]>;
  /** Adds one webhook attempt to the task's record of them. */
  addWebhookAttempt(principal: string, taskUUID: string, attempt: WebhookAttemptRecord): Promise<void>;
  webhookAttempts(principal: string, taskUUID: string): Promise<readonly WebhookAttemptRecord[]>;
  /** How long records are kept. */
  readonly ttlSeconds: number;
}

/** The ledger cannot be read now (Redis down or not answering); asking again later may work. */
export class LedgerUnavailableError extends Error {
  override readonly name = 'LedgerUnavailableError';
}

export function isFinal(entry: LedgerEntry): boolean {
  return entry.state !== 'processing';
}

/** Whether a claim may take this record over: it failed, or it is a sync task's whose replica gave up on it. */
export function isClaimable(entry: LedgerEntry, abandonedBefore: number | undefined): boolean {
  if (entry.state === 'error') return true;
  return entry.state === 'processing' && entry.deliveryMethod === 'sync' && abandonedBefore !== undefined && entry.updatedAt < abandonedBefore;
}
