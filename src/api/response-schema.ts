import { z } from 'zod';
import { errorCatalogue, warningCatalogue, type ErrorCode, type WarningCode } from '../errors.js';
import { imageInferenceSchema } from '../tasks/image-inference/schema.js';

/** Schemas of the public API's bodies, for the OpenAPI document; built from the same catalogue and task schema. */

export const taskArraySchema = z
  .array(imageInferenceSchema)
  .min(1)
  .meta({ description: 'A JSON array of tasks; each is validated and run independently (a single object is refused).' });

const errorSchema = z
  .object({
    code: z.enum(Object.keys(errorCatalogue) as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
    parameter: z.string().optional().meta({ description: 'JSON path of the offending field, e.g. `embeddings[1].model`.' }),
    taskUUID: z.string().optional(),
    taskType: z.string().optional(),
    taskIndex: z.int().optional().meta({ description: 'Position of the task in the request array.' }),
    retryAfter: z.int().optional().meta({ description: 'Seconds to wait before retrying (capacity errors); also the Retry-After header.' }),
    queuePosition: z.int().optional().meta({ description: "Where the task stood, or would have stood, in the gateway's queue." }),
    min: z.number().optional(),
    max: z.number().optional(),
    allowed: z.array(z.union([z.string(), z.number()])).optional(),
    retryable: z.boolean(),
  })
  .meta({ id: 'Error' });

const warningSchema = z
  .object({
    code: z.enum(Object.keys(warningCatalogue) as [WarningCode, ...WarningCode[]]),
    message: z.string(),
    parameter: z.string().optional(),
    taskUUID: z.string().optional(),
    taskType: z.string().optional(),
    taskIndex: z.int().optional(),
  })
  .meta({ id: 'Warning' });

const imageResultSchema = z
  .object({
    taskType: z.literal('imageInference'),
    taskUUID: z.string(),
    imageUUID: z.string(),
    imageURL: z.string().optional(),
    imageBase64Data: z.string().optional(),
    imageDataURI: z.string().optional(),
    seed: z.union([z.int(), z.string()]).meta({ description: 'Exact seed; a decimal string above 2^53.' }),
    cost: z.number().optional(),
  })
  .meta({ id: 'ImageResult' });

export const taskResponseSchema = z
  .object({
    data: z.array(imageResultSchema),
    errors: z.array(errorSchema),
    warnings: z.array(warningSchema),
  })
  .meta({ id: 'TaskResponse' });
