import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { createError } from '../../errors.js';
import type { ContentStore } from '../../embeddings/content-store.js';
import { errorBody, fileBody } from '../response-schema.js';
import { sendError } from '../send-error.js';

const fileName = /^([0-9a-f]{64})\.safetensors$/;

/**
 * GET /v1/embeddings/{sha256}.safetensors: the canonical files workers download. Open without an API key —
 * workers hold none, and a file is only reachable by the SHA-256 of its contents — and cacheable forever,
 * since the name is the content.
 */
export async function embeddingFileRoutes(app: FastifyInstance, options: { store: ContentStore | undefined }): Promise<void> {
  app.get(
    '/v1/embeddings/:file',
    {
      schema: {
        tags: ['embeddings'],
        summary: 'Download a canonical embedding file',
        params: z.object({ file: z.string().meta({ description: '`{sha256}.safetensors`' }) }),
        response: { 200: fileBody(['application/octet-stream'], 'The canonical float32 safetensors file.'), 404: errorBody },
      },
    },
    async (request, reply) => {
      const { file } = request.params as { file: string };
      const sha256 = fileName.exec(file)?.[1];
      const bytes = sha256 ? await options.store?.get(sha256) : undefined;
      if (!sha256 || !bytes) {
        const error = createError('embeddingFileNotFound', `No canonical embedding file "${file.slice(0, 100)}" is stored here; the name is "<sha256>.safetensors" of an ingested embedding.`);
        return sendError(reply, error);
      }
      return reply
        .header('content-type', 'application/octet-stream')
        .header('cache-control', 'public, max-age=31536000, immutable')
        .header('etag', `"${sha256}"`)
        .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    },
  );
}
