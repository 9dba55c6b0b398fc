import type { FastifyRequest } from 'fastify';
import type { Principal } from '../contracts/principal.js';
import { createError } from '../errors.js';
import type { TaskService } from '../tasks/task-service.js';
import { ClientRequestError } from './client-request-error.js';

/** Whose request a GET route serves: the bearer key's principal, or the open one on a gateway without keys. */
export function principalFor(request: FastifyRequest, service: TaskService): Principal {
  if (request.principal) return request.principal;
  const authorization = service.authorize([]);
  if (authorization.kind !== 'authorized') throw new ClientRequestError(createError('missingApiKey', 'This endpoint needs an API key: send the header "Authorization: Bearer <key>".'));
  return authorization.principal;
}
