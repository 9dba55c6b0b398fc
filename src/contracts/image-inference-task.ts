import type { Air } from './air.js';

/**
 * An `imageInference` task after validation, in Runware's field names, defaults applied (DESIGN §2). The
 * validation stage's zod schema and its hand-written fast path both produce exactly this shape (a type
 * check in src/tasks/image-inference-schema.ts holds the schema to it); the dispatcher, the worker protocol
 * and the result views read it. The value lists and ranges below are the ones every stage shares.
 */

export const outputTypes = ['URL', 'base64Data', 'dataURI'] as const;
export type OutputType = (typeof outputTypes)[number];

export const outputFormats = ['PNG', 'JPG', 'WEBP'] as const;
export type OutputFormat = (typeof outputFormats)[number];
/** The formats whose encoder takes a quality; PNG is lossless. */
export const lossyOutputFormats: ReadonlySet<OutputFormat> = new Set(['JPG', 'WEBP']);

/** Runware's prompt syntaxes: compel's (`word++`, `(words)1.3`, `.blend()`) and A1111's (`(word:1.3)`, `[word]`, `BREAK`). */
export const promptWeightings = ['compel', 'sdEmbeds'] as const;
export type PromptWeighting = (typeof promptWeightings)[number];

export const deliveryMethods = ['sync', 'async'] as const;
export type DeliveryMethod = (typeof deliveryMethods)[number];

export interface ModelEntry {
  readonly model: Air;
  readonly weight: number;
}

export interface ImageInferenceTask {
  readonly taskType: 'imageInference';
  readonly taskUUID: string;
  readonly positivePrompt: string;
  negativePrompt?: string;
  readonly model: Air;
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  readonly CFGScale: number;
  /** Unsigned 64-bit, exact; absent: a random one is drawn. */
  seed?: bigint;
  /** The client sent its seed as a decimal string: image seeds go back as strings too. */
  seedAsText?: true;
  readonly scheduler: string;
  readonly clipSkip: number;
  /** Absent: the prompts are taken literally, brackets and all (Runware's default). */
  promptWeighting?: PromptWeighting;
  readonly numberResults: number;
  readonly outputType: OutputType;
  readonly outputFormat: OutputFormat;
  /** 20–99; applied by the worker to JPG and WEBP. */
  readonly outputQuality: number;
  /** True: each image is checked by the worker's NSFW classifier and reported with `NSFWContent`. */
  readonly checkNSFW: boolean;
  readonly deliveryMethod: DeliveryMethod;
  webhookURL?: string;
  readonly includeCost: boolean;
  readonly lora: readonly ModelEntry[];
  readonly embeddings: readonly ModelEntry[];
}
