import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Principal } from '../contracts/principal.js';
import { createError } from '../errors.js';
import type { ApiKeys } from '../tasks/api-keys.js';
import { ClientRequestError } from './client-request-error.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request, by its bearer key; undefined when it sent none. */
    principal: Principal | undefined;
  }
}

/**
 * Bearer keys, checked before the body is read. A request without the header is let through only where
 * the key may come in the body instead (`keyInBody`: the task routes, Runware's payload auth); a header that
 * is not `Bearer <key>`, or a key that is not valid, is refused either way.
 */
export function installBearerAuth(app: FastifyInstance, keys: ApiKeys, options: { keyInBody: boolean }): void {
  // Callback style: it runs for every request, and an async hook costs a promise and a microtask each.
  app.addHook('onRequest', (request, _reply, done) => {
    try {
      request.principal = principalOf(request, keys, options.keyInBody);
    } catch (error) {
      return done(error as Error);
    }
    done();
  });
}

function principalOf(request: FastifyRequest, keys: ApiKeys, keyInBody: boolean): Principal | undefined {
  const key = bearerKeyOf(request);
  if (key === undefined) {
    if (keyInBody || keys.open) return undefined;
    throw new ClientRequestError(createError('missingApiKey', 'This endpoint needs an API key: send the header "Authorization: Bearer <key>".'));
  }
  const principal = keys.verify(key);
  if (!principal) throw new ClientRequestError(createError('invalidApiKey', 'The API key is not valid. Check it, or ask the operator for one.'));
  return principal;
}

export function bearerKeyOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match?.[1]) throw new ClientRequestError(createError('missingApiKey', 'The Authorization header must be "Bearer <key>".'));
  return match[1];
}
