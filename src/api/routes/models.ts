import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { createError } from '../../errors.js';
import { AIR_MAX_LENGTH, AIR_PATTERN, airFormatHint, parseAir } from '../../contracts/air.js';
import { acceptsEmbeddings, families } from '../../contracts/families.js';
import { embeddingFileFormats, modelTypes, type ModelRecord } from '../../contracts/model-record.js';
import type { ModelResolver } from '../../contracts/model-resolver.js';
import { sendError } from '../send-error.js';
import { embeddingFilePath } from '../../contracts/embedding-file-path.js';
import { taskResponseSchema } from '../response-schema.js';

const modelRecordSchema = z
  .object({
    air: z.string(),
    name: z.string(),
    type: z.enum(modelTypes),
    family: z.enum(families),
    acceptsEmbeddings: z.boolean().meta({ description: 'For base models: whether embeddings can be used with it.' }),
    baseModel: z.string().optional(),
    source: z.enum(['builtin', 'operator', 'provider', 'registry']),
    trainedWords: z.array(z.string()).optional(),
    fetchedAt: z.string().optional(),
    file: z
      .object({
        sha256: z.string(),
        sizeBytes: z.int(),
        format: z.enum(embeddingFileFormats),
        vectors: z.int(),
        canonicalSha256: z.string(),
        canonicalSizeBytes: z.int(),
        canonicalUrl: z.string(),
        labelledFamily: z.enum(families).optional(),
      })
      .optional(),
    loraFile: z
      .object({
        sha256: z.string(),
        sizeBytes: z.int(),
        format: z.literal('safetensors'),
        downloadUrl: z.string().meta({ description: "The registry's download URL, where workers fetch the file." }),
        naming: z.enum(['kohya', 'peft']),
        evidence: z.string().meta({ description: "What in the file's header decided its family." }),
        labelledFamily: z.enum(families).optional(),
      })
      .optional()
      .meta({ description: "For LoRAs: what the gateway read from the file's safetensors header (by HTTP range)." }),
  })
  .meta({ id: 'ModelRecord' });

type ModelRecordView = z.output<typeof modelRecordSchema>;

/** GET /v1/models/{air}: what the gateway knows about a model, resolved the same way tasks resolve it. */
export async function modelRoutes(app: FastifyInstance, options: { resolver: ModelResolver; publicBaseUrl: string }): Promise<void> {
  app.get(
    '/v1/models/:air',
    {
      schema: {
        tags: ['models'],
        summary: 'Look up a model by AIR',
        security: [{ bearerAuth: [] }],
        // Documented, and checked by parseAir below (with the invalidAir answer).
        params: z.object({ air: z.string().meta({ description: 'AIR, e.g. civitai:7808@9208 (URL-encoded or not)', pattern: AIR_PATTERN, maxLength: AIR_MAX_LENGTH }) }),
        response: {
          200: modelRecordSchema,
          ...Object.fromEntries([400, 401, 404, 422, 429, 500, 502, 503].map((status) => [status, taskResponseSchema])),
        },
      },
    },
    async (request, reply) => {
      const { air: text } = request.params as { air: string };
      const air = parseAir(text);
      if (!air) {
        const error = createError('invalidAir', `"${text.slice(0, 100)}" is not a model identifier: expected ${airFormatHint}.`, { parameter: 'air' });
        return sendError(reply, error);
      }
      const resolution = (await options.resolver.resolveMany([air])).get(air.canonical);
      if (resolution?.kind === 'found') return reply.send(viewOf(resolution.record, options.publicBaseUrl));
      const error =
        resolution?.kind === 'rejected'
          ? createError(resolution.code, `"${air.canonical}": ${resolution.message}`, { parameter: 'air' })
          : resolution?.kind === 'unavailable'
            ? createError('modelUnavailable', `"${air.canonical}" could not be looked up: ${resolution.message} Retry later.`, { parameter: 'air' })
            : createError('modelNotFound', `"${air.canonical}" is in neither the model catalogue nor the registry.`, { parameter: 'air' });
      return sendError(reply, error);
    },
  );
}

function viewOf(record: ModelRecord, publicBaseUrl: string): ModelRecordView {
  return {
    air: record.air,
    name: record.name,
    type: record.type,
    family: record.family,
    acceptsEmbeddings: record.type === 'checkpoint' && acceptsEmbeddings(record.family),
    ...(record.baseModel !== undefined && { baseModel: record.baseModel }),
    source: record.source,
    ...(record.trainedWords !== undefined && { trainedWords: [...record.trainedWords] }),
    ...(record.fetchedAt !== undefined && { fetchedAt: new Date(record.fetchedAt).toISOString() }),
    ...(record.file && { file: { ...record.file, canonicalUrl: `${publicBaseUrl}${embeddingFilePath(record.file.canonicalSha256)}` } }),
    ...(record.loraFile && { loraFile: { ...record.loraFile } }),
  };
}
