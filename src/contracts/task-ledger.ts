import type { ApiError } from '../errors.js';
import type { ImageResult } from './task-result.js';

/**
 * The task ledger (DESIGN §8): what became of each task a key sent — `processing` while it runs, then
 * `success` with its results or `error` with its errors — kept for a TTL, keyed by the principal and the
 * taskUUID, so one key never reads another's. `getResponse` reads it; the image-inference task type writes it.
 * In Redis when REDIS_URL is set (any replica answers for any task), in process otherwise.
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
}

export interface TaskLedger {
  /** The task runs now (written without waiting for an answer: it is on the request's path). */
  started(principal: string, taskUUID: string, taskType: string): void;
  /** The task has given everything: its results and errors, in one write. */
  finished(principal: string, entry: Omit<LedgerEntry, 'updatedAt'>): Promise<void>;
  /** Undefined when the key never sent the task, or its record has expired. */
  get(principal: string, taskUUID: string): Promise<LedgerEntry | undefined>;
  /** How long records are kept. */
  readonly ttlSeconds: number;
}

/** The ledger cannot be read now (Redis down or not answering); asking again later may work. */
export class LedgerUnavailableError extends Error {
  override readonly name = 'LedgerUnavailableError';
}
