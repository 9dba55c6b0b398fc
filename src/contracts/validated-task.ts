import type { Air } from './air.js';
import type { ModelRecord } from './model-record.js';
import type { ImageInferenceTask } from './image-inference-task.js';

/** A task that passed validation, with what its AIRs resolved to: all the dispatcher needs. */
export interface ValidatedTask {
  readonly task: ImageInferenceTask;
  /** Position in the request, for errors. */
  readonly index: number;
  readonly model: ModelRecord;
  readonly embeddings: readonly { readonly air: Air; readonly weight: number; readonly record: ModelRecord }[];
}
