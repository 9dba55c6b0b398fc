import { isFinal, type LedgerEntry, type TaskLedger } from '../../contracts/task-ledger.js';
import type { Cancellation } from '../../contracts/cancellation.js';
import { createError, type ApiError, type ErrorDetails } from '../../errors.js';
import type { ImageResult } from '../../contracts/task-result.js';

/**
 * A sync task sent again (same key, same taskUUID, same body): its answer comes from the ledger, never
 * from generating again — its results when they were kept, the wait for it when it still runs.
 */

export type Replay = { readonly kind: 'results'; readonly results: readonly ImageResult[]; readonly errors: readonly ApiError[] } | { readonly kind: 'error'; readonly error: ApiError };

export function replayOf(entry: LedgerEntry, details: ErrorDetails): Replay {
  if (entry.state === 'error') return { kind: 'results', results: [], errors: entry.errors };
  const complete = entry.inlineKept === true || entry.results.every((result) => result.imageURL !== undefined);
  if (complete) return { kind: 'results', results: entry.results, errors: entry.errors };
  return {
    kind: 'error',
    error: createError(
      'resultNotKept',
      `Task ${entry.taskUUID} was sent before with this key and finished at ${new Date(entry.updatedAt).toISOString()}: its inline images (${entry.results.map((result) => result.imageUUID).join(', ')}) went out in that answer and are not kept. It is not generated again: send a new taskUUID, or use outputType "URL" or deliveryMethod "async" to be able to fetch results again.`,
      { ...details, parameter: 'taskUUID' },
    ),
  };
}

/**
 * Waits until the task's record is final (polling, with a growing pause): the record, or `gone` when it
 * expired meanwhile, or `waiting` when the deadline passed or the client left first.
 */
export async function waitUntilFinal(ledger: TaskLedger, principal: string, taskUUID: string, deadline: number, cancellation: Cancellation): Promise<LedgerEntry | 'gone' | 'waiting'> {
  let pause = 50;
  while (Date.now() < deadline && !cancellation.cancelled) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(pause, Math.max(1, deadline - Date.now()))));
    const entry = await ledger.get(principal, taskUUID);
    if (!entry) return 'gone';
    if (isFinal(entry)) return entry;
    pause = Math.min(pause * 2, 1000);
  }
  return 'waiting';
}

export function stillProcessing(taskUUID: string, waitedMs: number, details: ErrorDetails): ApiError {
  return createError(
    'taskStillProcessing',
    `Task ${taskUUID} is still running after ${Math.round(waitedMs / 1000)} s (SYNC_WAIT_LIMIT_SECONDS) and continues: fetch its results with {"taskType": "getResponse", "taskUUID": "${taskUUID}"}, GET /v1/tasks/${taskUUID} or its events at GET /v1/tasks/${taskUUID}/events.`,
    { ...details, retryAfter: 5 },
  );
}
