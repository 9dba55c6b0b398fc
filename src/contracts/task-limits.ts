/**
 * The ranges of task fields that several stages check: the validation schema and its fast path, the worker
 * protocol, the OpenAPI document and the README all take them from here.
 */

export const PROMPT_MAX_LENGTH = 3000;
export const DIMENSION = { min: 128, max: 2048, multipleOf: 64 } as const;
export const STEPS = { min: 1, max: 100, default: 20 } as const;
export const CFG_SCALE = { min: 0, max: 30, default: 7 } as const;
export const CLIP_SKIP = { min: 0, max: 2, default: 0 } as const;
export const NUMBER_RESULTS = { min: 1, max: 20, default: 1 } as const;
export const OUTPUT_QUALITY = { min: 20, max: 99, default: 95 } as const;
/** Embedding and LoRA weights; the sign of an embedding's weight says which prompt it joins. */
export const WEIGHT_LIMIT = 4;
export const MAX_LORAS_PER_TASK = 10;
/** The most MAX_EMBEDDINGS_PER_TASK may be set to; the schema refuses longer lists before anything else. */
export const MAX_EMBEDDINGS_CEILING = 100;
/**
 * Vectors a task's embeddings may hold together: the slots every worker's text encoder reserves (worker
 * protocol v1). 14 embeddings of 75 vectors would not fit, and no retry could make them.
 */
export const EMBEDDING_VECTORS_PER_TASK = 1024;
/**
 * Words of a prompt that stand for one embedding (worker protocol `mentions`): how many, and how long — room
 * for a marker `<embedding:AIR>` around the longest AIR (300 characters).
 */
export const MAX_MENTIONS = 16;
export const MAX_MENTION_LENGTH = 320;
/** Weights a prompt's syntax (promptWeighting) may give any piece of text. */
export const PROMPT_WEIGHT_RANGE = { min: 0, max: 4 } as const;

/** The operator's limits on one request (configuration). */
export interface RequestLimits {
  readonly maxTasksPerRequest: number;
  readonly maxEmbeddingsPerTask: number;
}
