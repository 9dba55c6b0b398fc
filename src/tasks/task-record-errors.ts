import { createError, type ApiError, type ErrorDetails } from '../errors.js';

/** The two answers of everything that reads a task's record (getResponse, its events, its webhook attempts). */

export function taskNotFound(taskUUID: string, ttlSeconds: number, details: ErrorDetails = {}): ApiError {
  return createError(
    'taskNotFound',
    `No task ${taskUUID} of this API key is known here: it was never sent with this key, or its record is older than ${ttlSeconds} s (TASK_LEDGER_TTL_SECONDS).`,
    { ...details, parameter: 'taskUUID' },
  );
}

export function ledgerUnavailable(details: ErrorDetails = {}): ApiError {
  return createError('taskLedgerUnavailable', 'The task ledger cannot be read right now (its store is not answering); ask again in a moment.', { ...details, retryAfter: 1 });
}
