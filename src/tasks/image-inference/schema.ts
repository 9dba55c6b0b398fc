import { z } from 'zod';
import { airFormatHint, parseAir, type Air, AIR_MAX_LENGTH } from '../../contracts/air.js';
import { schedulers } from './schedulers.js';
import { seedSchema } from '../../contracts/seed.js';

/**
 * The structural shape of an `imageInference` task (DESIGN §2), Runware's field names. Semantic rules —
 * which models exist, where embeddings are allowed — come after this, in the validation stage.
 */

export const airSchema = z
  .string()
  .max(AIR_MAX_LENGTH)
  .transform((text, context): Air => {
    const air = parseAir(text);
    if (!air) {
      context.addIssue({ code: 'custom', message: `expected ${airFormatHint}`, params: { code: 'invalidAir' } });
      return z.NEVER;
    }
    return air;
  })
  .meta({ description: 'AIR of the model: `source:id@version` or `urn:air:{ecosystem}:{type}:{source}:{id}@{version}`.', examples: ['civitai:4384@128713'] });

const weightSchema = z.number().min(-4).max(4).default(1);

export const embeddingEntrySchema = z.strictObject({
  model: airSchema,
  weight: weightSchema.meta({
    description:
      'Strength of the embedding. Positive adds the concept through the positive prompt; negative suppresses it through the negative prompt. Beyond ±2 is accepted with a warning.',
  }),
});

export const loraEntrySchema = z.strictObject({
  model: airSchema,
  weight: weightSchema,
});

const dimension = (name: string) =>
  z.int().min(128).max(2048).multipleOf(64).meta({ description: `${name} in pixels, a multiple of 64 from 128 to 2048.` });

const prompt = z.string().min(1).max(3000);

export const MAX_LORAS_PER_TASK = 10;
/** The most MAX_EMBEDDINGS_PER_TASK may be set to; the schema refuses longer lists before anything else. */
export const MAX_EMBEDDINGS_CEILING = 100;

export const imageInferenceFields = {
  taskType: z.literal('imageInference'),
  taskUUID: z.uuid().meta({ description: 'Client-chosen UUID; results and errors carry it back.' }),
  positivePrompt: prompt,
  negativePrompt: prompt.optional(),
  model: airSchema,
  width: dimension('Width'),
  height: dimension('Height'),
  steps: z.int().min(1).max(100).default(20),
  CFGScale: z.number().min(0).max(30).default(7),
  seed: seedSchema.optional(),
  scheduler: z.enum(schedulers).default('Default'),
  clipSkip: z.int().min(0).max(2).default(0),
  numberResults: z.int().min(1).max(20).default(1),
  outputType: z.enum(['URL', 'base64Data', 'dataURI']).default('URL'),
  outputFormat: z.enum(['PNG', 'JPG', 'WEBP']).default('JPG'),
  deliveryMethod: z.enum(['sync', 'async']).default('sync'),
  webhookURL: z.url({ protocol: /^https?$/ }).max(2048).optional(),
  includeCost: z.boolean().default(false),
  lora: z.array(loraEntrySchema).max(MAX_LORAS_PER_TASK).default([]),
  embeddings: z.array(embeddingEntrySchema).max(MAX_EMBEDDINGS_CEILING).default([]).meta({
    description:
      'Textual inversions to inject into the CLIP text encoder(s). Only SD 1.x and SDXL base models take them; the count limit is MAX_EMBEDDINGS_PER_TASK.',
  }),
};

export const imageInferenceSchema = z.strictObject(imageInferenceFields).meta({ id: 'ImageInferenceTask' });

export type ImageInferenceTask = z.output<typeof imageInferenceSchema>;
export type EmbeddingEntry = z.output<typeof embeddingEntrySchema>;
export type LoraEntry = z.output<typeof loraEntrySchema>;
