import type { ErrorDetails } from '../errors.js';
import type { ValidatedTask } from './validated-task.js';

/** An async task on the job queue: validated when it was sent, run by whichever replica takes it. */
export interface QueuedTask {
  readonly principal: string;
  readonly validated: ValidatedTask;
  readonly details: ErrorDetails;
}
