import type { Air } from './air.js';
import type { ModelRecord } from './model-record.js';
import type { ImageInferenceTask } from './image-inference-task.js';

/** A task that passed validation, with what its AIRs resolved to: all the dispatcher needs. */
export interface ValidatedTask {
  readonly task: ImageInferenceTask;
  /** Position in the request, for errors. */
  readonly index: number;
  readonly model: ModelRecord;
  readonly embeddings: readonly ValidatedEmbedding[];
  readonly loras: readonly ValidatedLora[];
}

export interface ValidatedLora {
  readonly air: Air;
  readonly weight: number;
  readonly record: ModelRecord;
}

export interface ValidatedEmbedding {
  readonly air: Air;
  readonly weight: number;
  readonly record: ModelRecord;
  /** The words of the prompt its weight sends it to that stand for it (trigger words, its marker), as spelled there. */
  readonly mentions?: readonly string[];
}
