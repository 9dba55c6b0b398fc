import { z } from 'zod';
import { embeddingFamilyNames } from '../contracts/families.js';
import { outputFormats, promptWeightings } from '../contracts/image-inference-task.js';
import { SEED_MAX } from '../contracts/seed.js';
import { EMBEDDING_VECTORS_PER_TASK, MAX_LORAS_PER_TASK, MAX_MENTION_LENGTH, MAX_MENTIONS, OUTPUT_QUALITY, WEIGHT_LIMIT } from '../contracts/task-limits.js';

/**
 * Worker protocol v1: what the gateway and a GPU worker say to each other (DESIGN §6). These schemas are
 * the one source of truth: the gateway validates workers' answers with them, and `npm run openapi` writes
 * them out as openapi/worker.v1.json, the contract the reference worker is tested against.
 *
 * POST /v1/jobs answers with a stream of NDJSON events so that a slow first byte (a worker that accepted
 * nothing) and a slow total (a long generation) are told apart: `accepted` comes at once, `progress` lines
 * follow — at least one every few seconds while the job runs, waits, downloads or loads (a repeated step is a
 * heartbeat; the gateway takes a silent stream for a hung worker) — then exactly one `result` or `error`
 * ends the stream. Every event names the job's id.
 */

export const WORKER_PROTOCOL_VERSION = 'clipgate-worker/1';

/**
 * What a worker can do beyond the core of protocol v1, as it says in its health report. A job carries the
 * fields of a capability only when the task needs it, and then goes only to workers that advertise it, so no
 * worker is sent what it would ignore (DESIGN §6).
 * - `outputQuality`: encodes JPG and WEBP at the job's `outputQuality` (without it, workers use 95);
 * - `nsfwCheck`: runs an NSFW classifier on each image when the job says `checkNSFW`, and reports `nsfw`;
 * - `promptWeighting`: reads the prompts in the job's `promptWeighting` syntax (`sdEmbeds`, `compel`);
 * - `embeddingMentions`: places an embedding's vectors where its side's prompt names it (`mentions`),
 *   instead of after the prompt;
 * - `loras`: downloads each of the job's `loras` from its URL (with the worker's own registry credentials),
 *   verifies its SHA-256 and applies it at its weight, for that job only.
 */
export const workerCapabilities = ['outputQuality', 'nsfwCheck', 'promptWeighting', 'embeddingMentions', 'loras'] as const;
export type WorkerCapability = (typeof workerCapabilities)[number];

/** Families a worker can inject embeddings for. Base models may be of any family a worker serves. */
const embeddingFamily = z.enum(embeddingFamilyNames);
const modelFamily = z.string().min(1).meta({ description: 'Architecture family, e.g. `sd1`, `sdxl`, `flux`.' });
const seedText = z
  .string()
  .regex(/^\d{1,20}$/)
  // Twenty digits reach past 2^64 - 1; fewer never do.
  .refine((text) => text.length < 20 || BigInt(text) <= SEED_MAX, { message: 'a seed is at most 18446744073709551615 (2^64 - 1)' })
  .meta({ description: 'Unsigned 64-bit seed as a decimal string (JSON numbers lose precision above 2^53), 0 to 18446744073709551615.' });

export const workerErrorSchema = z
  .object({
    code: z.string().meta({ description: 'Stable machine-readable code, e.g. `busy`, `unknownModel`, `embeddingShapeMismatch`, `cancelled`, `internal`.' }),
    message: z.string(),
    retryable: z.boolean().meta({ description: 'True when the same job may succeed on another worker or later.' }),
  })
  ;

export const workerErrorBodySchema = z.object({ error: workerErrorSchema });

export const workerHealthSchema = z
  .object({
    protocol: z.literal(WORKER_PROTOCOL_VERSION),
    status: z.enum(['ready', 'starting', 'draining']),
    families: z.array(modelFamily),
    models: z.array(
      z.object({
        air: z.string(),
        family: modelFamily,
        loaded: z.boolean().meta({ description: 'Weights are on the GPU now: a job for it starts without a model swap.' }),
      }),
    ),
    maxConcurrency: z.int().min(1).meta({ description: 'Jobs the worker runs or queues at once; more are refused with 429 `busy`.' }),
    load: z.object({ running: z.int().min(0), queued: z.int().min(0) }),
    batchSize: z
      .int()
      .min(1)
      .optional()
      .meta({
        description:
          'The most images the worker draws in one UNet pass: queued jobs with the same model, size, steps, scheduler, CFG and LoRA set share it, each image with its own seed. Absent: 1 (one job at a time).',
      }),
    maxLoadedModels: z
      .int()
      .min(1)
      .optional()
      .meta({ description: 'Models the worker keeps loaded at once; loading one more unloads the least recently used. The gateway prefers a model swap that unloads nothing. Absent: unknown.' }),
    // Names the gateway does not know are kept out rather than refused: a newer worker may do more.
    capabilities: z
      .array(z.string())
      .optional()
      .meta({ description: `Optional features the worker has: ${workerCapabilities.map((name) => `\`${name}\``).join(', ')}. Absent: none.` }),
  })
  ;

export const jobEmbeddingSchema = z
  .object({
    air: z.string(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).meta({ description: 'SHA-256 of the canonical safetensors file at `url`.' }),
    url: z.url().meta({ description: 'Where the canonical safetensors file is served (the gateway).' }),
    weight: z.number().min(0).max(4).meta({ description: 'Emphasis, always positive; the sign of the client weight became `placement`.' }),
    placement: z.enum(['positive', 'negative']),
    vectors: z.int().min(1).max(75),
    family: embeddingFamily,
    mentions: z
      .array(z.string().min(1).max(MAX_MENTION_LENGTH))
      .max(MAX_MENTIONS)
      .optional()
      .meta({
        description:
          'Capability `embeddingMentions`: words of the prompt of `placement` that stand for this embedding (trigger words, its `<embedding:AIR>` marker). The worker puts the vectors at each occurrence — case-insensitive, with no letter, digit or `_` right before or after — and does not append them. Absent: after the prompt.',
      }),
  })
  .meta({
    description: `An embedding of the job. Every worker reserves at least ${EMBEDDING_VECTORS_PER_TASK} slots per text encoder: the gateway never sends a job whose embeddings hold more vectors together.`,
  });

export const jobLoraSchema = z
  .object({
    air: z.string(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).meta({ description: "SHA-256 of the file at `url`, as the registry lists it: the worker verifies its download against it." }),
    url: z.url().meta({ description: "The registry's download URL. Jobs carry no credentials: a worker that needs them for the registry has its own." }),
    sizeBytes: z.int().min(1).meta({ description: 'The size the registry lists (a worker may refuse files beyond its cap before downloading).' }),
    weight: z.number().min(-WEIGHT_LIMIT).max(WEIGHT_LIMIT).meta({ description: 'Adapter weight for the UNet and the text encoder(s); never 0 (the gateway drops those).' }),
    family: modelFamily,
  })
  .meta({ description: 'Capability `loras`: a LoRA applied to this job only, beside its embeddings.' });

export const jobRequestSchema = z
  .object({
    jobId: z.string().min(1).max(128).meta({ description: 'Idempotency key: a job id seen before is not run twice.' }),
    model: z.object({ air: z.string(), family: modelFamily }),
    positivePrompt: z.string(),
    negativePrompt: z.string(),
    width: z.int().min(128).max(2048),
    height: z.int().min(128).max(2048),
    steps: z.int().min(1).max(100),
    cfgScale: z.number().min(0).max(30),
    seed: seedText,
    scheduler: z.string(),
    clipSkip: z.int().min(0).max(2),
    numberResults: z.int().min(1).max(20).meta({ description: 'Image i uses seed + i (mod 2^64).' }),
    outputFormat: z.enum(outputFormats),
    outputQuality: z
      .int()
      .min(OUTPUT_QUALITY.min)
      .max(OUTPUT_QUALITY.max)
      .optional()
      .meta({ description: 'Capability `outputQuality`: the JPG or WEBP encoder quality. Absent: 95.' }),
    checkNSFW: z.literal(true).optional().meta({ description: 'Capability `nsfwCheck`: classify each image and report `nsfw` with it.' }),
    promptWeighting: z
      .enum(promptWeightings)
      .optional()
      .meta({ description: 'Capability `promptWeighting`: the prompts are in A1111 syntax (`sdEmbeds`) or compel syntax (`compel`). Absent: plain text.' }),
    embeddings: z.array(jobEmbeddingSchema),
    loras: z.array(jobLoraSchema).max(MAX_LORAS_PER_TASK).optional(),
  })
  ;

export const jobImageSchema = z
  .object({
    imageUUID: z.uuid(),
    seed: seedText,
    format: z.enum(outputFormats),
    nsfw: z.boolean().optional().meta({ description: 'The NSFW classifier\'s verdict; present exactly when the job asked for checkNSFW.' }),
    // Not z.base64(): that decodes the whole image just to check it, milliseconds of event loop per image.
    data: z.string().min(1).meta({ description: 'The encoded image, base64.', contentEncoding: 'base64' }),
  })
  ;

export const jobTimingsSchema = z
  .object({
    queueMs: z.number().min(0),
    embeddingMs: z.number().min(0),
    inferenceMs: z.number().min(0),
    totalMs: z.number().min(0),
  })
  ;

export const jobEventSchema = z
  .discriminatedUnion('event', [
    z.object({ event: z.literal('accepted'), jobId: z.string() }),
    z.object({ event: z.literal('progress'), jobId: z.string(), step: z.int().min(0), steps: z.int().min(1) }),
    z.object({
      event: z.literal('result'),
      jobId: z.string(),
      images: z.array(jobImageSchema).min(1),
      timings: jobTimingsSchema,
      warnings: z.array(z.string()).optional(),
    }),
    z.object({ event: z.literal('error'), jobId: z.string(), error: workerErrorSchema }),
  ])
  ;

export type WorkerHealth = z.output<typeof workerHealthSchema>;
export type JobRequest = z.output<typeof jobRequestSchema>;
export type JobEmbedding = z.output<typeof jobEmbeddingSchema>;
export type JobLora = z.output<typeof jobLoraSchema>;
export type JobImage = z.output<typeof jobImageSchema>;
export type JobEvent = z.output<typeof jobEventSchema>;
export type WorkerError = z.output<typeof workerErrorSchema>;
