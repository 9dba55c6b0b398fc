import type { ApiError, ErrorDetails } from '../errors.js';
import type { LedgerEntry } from './task-ledger.js';

/**
 * A task's webhookURL (DESIGN §8): checked when the task is sent (a refused target is an error then, not a
 * silent drop later), and once the task is final, one signed POST per result (or one of its errors), each
 * queued and retried on its own.
 */
export interface Webhooks {
  /** Why clipgate will not call this URL; undefined when it will. */
  refusal(url: string, details: ErrorDetails): Promise<ApiError | undefined>;
  /** Queues the deliveries of a final task; each goes out once however often this is called for it. */
  announce(principal: string, entry: LedgerEntry, webhookURL: string): Promise<void>;
}
