import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { createError } from '../../errors.js';
import type { ImageStore } from '../../dispatch/image-store.js';
import { errorBody, fileBody } from '../response-schema.js';
import { sendError } from '../send-error.js';

const mediaTypes: Record<string, string> = { png: 'image/png', jpg: 'image/jpeg', webp: 'image/webp' };

/**
 * GET /v1/images/{imageUUID}.{ext}: results of outputType URL. Open, like a CDN link: the name is a random
 * UUID the client received, and the content never changes.
 */
export async function imageRoutes(app: FastifyInstance, options: { store: ImageStore | undefined }): Promise<void> {
  app.get(
    '/v1/images/:file',
    {
      schema: {
        tags: ['images'],
        summary: 'Download a generated image',
        params: z.object({ file: z.string().meta({ description: '`{imageUUID}.{png|jpg|webp}`' }) }),
        response: { 200: fileBody(['image/png', 'image/jpeg', 'image/webp', 'application/octet-stream'], 'The image, in the format the task asked for.'), 404: errorBody, 429: errorBody, 503: errorBody },
      },
    },
    async (request, reply) => {
      const { file } = request.params as { file: string };
      const bytes = await options.store?.get(file.toLowerCase());
      if (!bytes) return sendError(reply, createError('imageNotFound', `No image "${file.slice(0, 100)}" is stored here.`));
      const extension = file.slice(file.lastIndexOf('.') + 1).toLowerCase();
      return reply
        .header('content-type', mediaTypes[extension] ?? 'application/octet-stream')
        .header('cache-control', 'public, max-age=86400, immutable')
        .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    },
  );
}
