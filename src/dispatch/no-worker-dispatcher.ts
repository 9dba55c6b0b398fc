import { createError } from '../errors.js';
import type { Dispatcher } from '../contracts/dispatcher.js';

/**
 * The dispatcher of a gateway with no GPU workers configured: every valid task is answered with a
 * clear, retryable noAvailableWorker — never with a made-up image.
 */
export function createNoWorkerDispatcher(): Dispatcher {
  return {
    async dispatch({ task }, context) {
      return {
        kind: 'failed',
        error: createError(
          'noAvailableWorker',
          `No GPU worker is available to run model "${task.model.canonical}": this gateway has no workers configured yet. The task is valid; retry once workers are online.`,
          context.details,
        ),
      };
    },
  };
}
