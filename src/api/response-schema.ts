import { z } from 'zod';
import { errorCatalogue, warningCatalogue, type ErrorCode, type WarningCode } from '../errors.js';
import { authenticationTaskSchema } from '../tasks/authentication/authentication-task.js';
import { imageInferenceSchema } from '../tasks/image-inference/schema.js';
import { pingTaskSchema } from '../tasks/ping/ping-task.js';
import { getResponseTaskSchema } from '../tasks/get-response/get-response-task.js';

/** Schemas of the public API's bodies, for the OpenAPI document; built from the same catalogue and task schema. */

export const taskArraySchema = z
  .array(z.union([imageInferenceSchema, authenticationTaskSchema, pingTaskSchema, getResponseTaskSchema]))
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

const seedOut = z
  .union([z.int(), z.string()])
  .meta({ description: 'Exact seed: a JSON number with every digit (beyond 2^53 too); a decimal string when the task sent its seed as one.' });

const imageResultSchema = z
  .object({
    taskType: z.literal('imageInference'),
    taskUUID: z.string(),
    imageUUID: z.string(),
    imageURL: z.string().optional(),
    imageBase64Data: z.string().optional(),
    imageDataURI: z.string().optional(),
    seed: seedOut,
    NSFWContent: z.boolean().optional().meta({ description: "Present when the task asked for checkNSFW: the worker's classifier's verdict." }),
    cost: z.number().optional(),
    status: z.literal('success').optional().meta({ description: 'In a getResponse answer: the task finished, and this is one of its results.' }),
  })
  .meta({ id: 'ImageResult' });

const taskStatusResultSchema = z
  .object({ taskType: z.literal('imageInference'), taskUUID: z.string(), status: z.literal('processing') })
  .meta({ id: 'TaskStatusResult', description: 'In a getResponse answer: the task has not finished yet; ask again.' });

const taskAcceptedResultSchema = z
  .strictObject({ taskType: z.literal('imageInference'), taskUUID: z.string() })
  .meta({ id: 'TaskAcceptedResult', description: 'An async task (deliveryMethod "async") was accepted: getResponse, GET /v1/tasks/{taskUUID}, its events or its webhook give the results.' });

const authenticationResultSchema = z
  .object({
    taskType: z.literal('authentication'),
    connectionSessionUUID: z.string().optional().meta({ description: 'The WebSocket session, to resume it with; absent over REST.' }),
    taskUUID: z.string().optional(),
  })
  .meta({ id: 'AuthenticationResult' });

const pongSchema = z
  .object({ taskType: z.literal('ping'), pong: z.literal(true), taskUUID: z.string().optional() })
  .meta({ id: 'PongResult' });

export const taskResponseSchema = z
  .object({
    data: z.array(z.union([imageResultSchema, authenticationResultSchema, pongSchema, taskStatusResultSchema, taskAcceptedResultSchema])).min(1).optional(),
    errors: z.array(errorSchema).min(1).optional(),
    warnings: z.array(warningSchema).min(1).optional(),
    error: z
      .object({ code: errorSchema.shape.code, message: z.string(), parameter: z.string().optional() })
      .optional()
      .meta({ description: "When no task produced data: the dominant error's code and message, for clients that read a single error." }),
  })
  .meta({
    id: 'TaskResponse',
    description: 'Members are present only when they hold something, as in Runware\'s answers.',
  });

/** The body of an error answer of a route that is not the task route: the same shape. */
export const errorBody = taskResponseSchema;

/** A binary answer, in the media types the route serves (the bytes are sent as they are, not serialized). */
export function fileBody(mediaTypes: readonly string[], description: string) {
  const schema = z.string().meta({ format: 'binary' });
  return { description, content: Object.fromEntries(mediaTypes.map((type) => [type, { schema }])) };
}
