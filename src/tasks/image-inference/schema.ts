import { z } from 'zod';
import { airFormatHint, parseAir, type Air, AIR_MAX_LENGTH, AIR_PATTERN } from '../../contracts/air.js';
import { deliveryMethods, outputFormats, outputTypes, promptWeightings, type ImageInferenceTask } from '../../contracts/image-inference-task.js';
import { seedSchema } from '../../contracts/seed.js';
import {
  CFG_SCALE,
  CLIP_SKIP,
  DIMENSION,
  MAX_EMBEDDINGS_CEILING,
  MAX_LORAS_PER_TASK,
  NUMBER_RESULTS,
  OUTPUT_QUALITY,
  PROMPT_MAX_LENGTH,
  STEPS,
  WEIGHT_LIMIT,
} from '../../contracts/task-limits.js';
import { schedulers } from './schedulers.js';

export { MAX_EMBEDDINGS_CEILING, MAX_LORAS_PER_TASK };

/**
 * The structural shape of an `imageInference` task (DESIGN §2), Runware's field names. Semantic rules —
 * which models exist, where embeddings are allowed — come after this, in the validation stage.
 */

export const airSchema = z
  .string()
  .max(AIR_MAX_LENGTH)
  // For the document only: parseAir, below, is the check (with its own message and code, invalidAir).
  .meta({ pattern: AIR_PATTERN })
  .transform((text, context): Air => {
    const air = parseAir(text);
    if (!air) {
      context.addIssue({ code: 'custom', message: `expected ${airFormatHint}`, params: { code: 'invalidAir' } });
      return z.NEVER;
    }
    return air;
  })
  .meta({ description: 'AIR of the model: `source:id@version` or `urn:air:{ecosystem}:{type}:{source}:{id}@{version}`.', examples: ['civitai:4384@128713'] });

const weightSchema = z.number().min(-WEIGHT_LIMIT).max(WEIGHT_LIMIT).default(1);

export const embeddingEntrySchema = z.strictObject({
  model: airSchema,
  weight: weightSchema.meta({
    description:
      'Strength of the embedding. Positive adds the concept through the positive prompt; negative suppresses it through the negative prompt. Beyond ±2 is accepted with a warning.',
  }),
});

export const loraEntrySchema = z.strictObject({
  model: airSchema,
  weight: weightSchema.meta({ description: 'Adapter weight, −4 to 4 (negative pushes the style away); 0 has no effect and is not applied.' }),
});

const dimension = (name: string) =>
  z
    .int()
    .min(DIMENSION.min)
    .max(DIMENSION.max)
    .multipleOf(DIMENSION.multipleOf)
    .meta({ description: `${name} in pixels, a multiple of ${DIMENSION.multipleOf} from ${DIMENSION.min} to ${DIMENSION.max}.` });

const prompt = z.string().min(1).max(PROMPT_MAX_LENGTH);

export const imageInferenceFields = {
  taskType: z.literal('imageInference'),
  taskUUID: z.uuid().meta({ description: 'Client-chosen UUID; results and errors carry it back.' }),
  positivePrompt: prompt,
  negativePrompt: prompt.optional(),
  model: airSchema,
  width: dimension('Width'),
  height: dimension('Height'),
  steps: z.int().min(STEPS.min).max(STEPS.max).default(STEPS.default),
  CFGScale: z.number().min(CFG_SCALE.min).max(CFG_SCALE.max).default(CFG_SCALE.default),
  seed: seedSchema.optional(),
  scheduler: z.enum(schedulers).default('Default'),
  clipSkip: z.int().min(CLIP_SKIP.min).max(CLIP_SKIP.max).default(CLIP_SKIP.default).meta({
    description:
      'SD 1.x: 2 takes the penultimate CLIP layer (A1111, ComfyUI). SDXL always uses the penultimate layer, as A1111 and ComfyUI do, so clipSkip changes nothing there (a warning says so).',
  }),
  promptWeighting: z.enum(promptWeightings).optional().meta({
    description:
      'How the prompts are read. Absent: literally, brackets and all. `sdEmbeds`: A1111 syntax — `(word:1.3)`, `(word)` ×1.1, `[word]` ÷1.1, `\\(` for a literal bracket, `BREAK` to start a new 75-token window. `compel`: compel syntax — `word++`, `word-`, `(words)1.3`, `("a", "b").blend(0.7, 0.3)`, `.and()`. Syntax errors are refused before any GPU time, with the character.',
  }),
  numberResults: z.int().min(NUMBER_RESULTS.min).max(NUMBER_RESULTS.max).default(NUMBER_RESULTS.default),
  outputType: z.enum(outputTypes).default('URL'),
  outputFormat: z.enum(outputFormats).default('JPG'),
  outputQuality: z
    .int()
    .min(OUTPUT_QUALITY.min)
    .max(OUTPUT_QUALITY.max)
    .default(OUTPUT_QUALITY.default)
    .meta({ description: 'Encoder quality of JPG and WEBP images, 20–99 (PNG is lossless and takes none).' }),
  checkNSFW: z.boolean().default(false).meta({
    description:
      "true: each image is checked by the worker's NSFW classifier and reported with `NSFWContent`; only workers that have one take such tasks.",
  }),
  deliveryMethod: z.enum(deliveryMethods).default('sync'),
  webhookURL: z.url({ protocol: /^https?$/ }).max(2048).optional(),
  includeCost: z.boolean().default(false),
  lora: z.array(loraEntrySchema).max(MAX_LORAS_PER_TASK).default([]).meta({
    description:
      "LoRAs applied to the UNet and text encoder(s), beside embeddings. Each must be of the base model's family (read from its file's header); tasks with LoRAs go only to workers that apply them, and with none get a retryable noAvailableWorker, never an image without them.",
  }),
  embeddings: z.array(embeddingEntrySchema).max(MAX_EMBEDDINGS_CEILING).default([]).meta({
    description:
      'Textual inversions to inject into the CLIP text encoder(s). Only SD 1.x and SDXL base models take them; the count limit is MAX_EMBEDDINGS_PER_TASK.',
  }),
};

export const imageInferenceSchema = z.strictObject(imageInferenceFields).meta({ id: 'ImageInferenceTask' });

/** What zod makes of a task: the shared contract, exactly (a compile-time check, below). */
export type ParsedImageInferenceTask = z.output<typeof imageInferenceSchema>;
type Exactly<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemaMatchesContract: Exactly<Omit<ParsedImageInferenceTask, 'scheduler'>, Omit<Mutable<ImageInferenceTask>, 'scheduler' | 'seedAsText'>> = true;
void schemaMatchesContract;
type Mutable<T> = { -readonly [K in keyof T]: T[K] extends readonly (infer E)[] ? E[] : T[K] };

export type EmbeddingEntry = z.output<typeof embeddingEntrySchema>;
export type LoraEntry = z.output<typeof loraEntrySchema>;
