import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { createError } from '../errors.js';
import { ClientRequestError } from './client-request-error.js';

/**
 * Bearer API keys. Keys are compared as SHA-256 digests with timingSafeEqual, so the time taken says
 * nothing about how much of a guess matched, nor about the keys' lengths.
 */
export function createApiKeyCheck(apiKeys: readonly string[]): (request: FastifyRequest) => Promise<void> {
  const digests = apiKeys.map(digest);
  return async (request) => {
    const header = request.headers.authorization;
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) {
      throw new ClientRequestError(
        createError('missingApiKey', 'This endpoint needs an API key: send the header "Authorization: Bearer <key>".'),
      );
    }
    const presented = digest(match[1]);
    // Compare against every key, without stopping early, so the position of a match does not show either.
    let valid = false;
    for (const key of digests) valid = timingSafeEqual(presented, key) || valid;
    if (!valid) {
      throw new ClientRequestError(createError('invalidApiKey', 'The API key is not valid. Check it, or ask the operator for one.'));
    }
  };
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}
