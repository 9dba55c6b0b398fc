import type { ApiError, ErrorDetails } from '../errors.js';
import type { Cancellation } from './cancellation.js';
import type { ImageResult } from './task-result.js';
import type { ValidatedTask } from './validated-task.js';

export type { ImageResult };

export type DispatchOutcome =
  | { readonly kind: 'images'; readonly images: readonly ImageResult[] }
  | { readonly kind: 'failed'; readonly error: ApiError };

export interface DispatchContext {
  /** Who the task is, for the error it may end in. */
  readonly details: ErrorDetails;
  /** Fires when the client goes away; the dispatcher cancels the worker's job. */
  readonly cancellation: Cancellation;
  /** Told each denoising step the worker reports (async tasks' event streams); absent: nobody listens. */
  readonly onProgress?: (step: number, steps: number) => void;
}

/** The last stage of a task: turn a validated task into images on a GPU worker, or say why not. */
export interface Dispatcher {
  dispatch(task: ValidatedTask, context: DispatchContext): Promise<DispatchOutcome>;
}
