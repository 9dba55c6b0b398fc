import type { FastifyInstance } from 'fastify';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { createError } from '../errors.js';
import { ClientRequestError } from './client-request-error.js';

const decoders = { gzip: createGunzip, 'x-gzip': createGunzip, deflate: createInflate, br: createBrotliDecompress } as const;
type Coding = keyof typeof decoders;

/**
 * Request bodies sent with `Content-Encoding: gzip`, `deflate` or `br` are decoded before they are parsed,
 * under the same BODY_LIMIT_BYTES — counted on the decoded bytes, so a small bomb stops at the limit (Fastify
 * stops reading past it; the decoder, unread, stops too). Any other coding is refused with 415, never read
 * as if it were plain JSON.
 */
export function decodeRequestBodies(app: FastifyInstance): void {
  // Callback style: it runs for every request with a body, and an async hook costs a promise each.
  app.addHook('preParsing', (request, _reply, payload, done) => {
    const header = request.headers['content-encoding'];
    if (header === undefined) return done(null, payload);
    const codings = header
      .toLowerCase()
      .split(',')
      .map((coding) => coding.trim())
      .filter((coding) => coding !== '' && coding !== 'identity');
    if (codings.length === 0) return done(null, payload);
    const unknown = codings.find((coding) => !(coding in decoders));
    if (unknown !== undefined || codings.length > 1) {
      return done(
        new ClientRequestError(
          createError('unsupportedMediaType', `Content-Encoding "${header.slice(0, 40)}" is not taken: send the body plain, or with one of gzip, deflate, br.`, {
            allowed: ['gzip', 'deflate', 'br', 'identity'],
          }),
        ),
      );
    }
    const decoder = decoders[codings[0] as Coding]();
    let encodedBytes = 0;
    payload.on('data', (chunk: Buffer) => (encodedBytes += chunk.length));
    payload.on('error', (error) => decoder.destroy(error));
    // Fastify compares Content-Length with the encoded bytes, and the limit with the decoded ones.
    Object.defineProperty(decoder, 'receivedEncodedLength', { get: () => encodedBytes });
    done(null, payload.pipe(decoder) as Readable);
  });
}
