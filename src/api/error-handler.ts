import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createError, statusOf, type ApiError } from '../errors.js';
import { ClientRequestError } from './client-request-error.js';
import { sendError } from './send-error.js';

/**
 * The app's one error handler: every failure leaves in the documented error shape. Client mistakes get
 * their catalogue code; anything else is an internalError whose details stay in the log, never in the
 * response.
 */
export function installErrorHandling(app: FastifyInstance, limits: { bodyLimitBytes: number }, allowedMethods: (path: string) => string[]): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const apiError = toApiError(error, limits);
    const status = statusOf(apiError.code);
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ code: apiError.code }, 'request refused');
    return sendError(reply, apiError);
  });

  const answerUnrouted = (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0] ?? '/';
    const allowed = allowedMethods(path);
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '));
      return sendError(reply, createError('methodNotAllowed', `${path} answers ${allowed.join(', ')}, not ${request.method}.`, { allowed }));
    }
    return sendError(reply, createError('routeNotFound', `No endpoint answers ${request.method} ${path}. Tasks go to POST /v1/tasks; the API is described at /docs.`));
  };
  // Answered before the body is read: a request that reaches no route (QUERY, PROPFIND, …) must not be
  // refused for its body (a missing Content-Type) instead of for its method.
  app.addHook('onRequest', (request, reply, done) => {
    if (request.is404) answerUnrouted(request, reply);
    else done();
  });
  app.setNotFoundHandler(answerUnrouted);
}

function toApiError(error: FastifyError, limits: { bodyLimitBytes: number }): ApiError {
  if (error instanceof ClientRequestError) return error.apiError;
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return createError('payloadTooLarge', `The request body is larger than this gateway's limit of ${limits.bodyLimitBytes} bytes. Send fewer tasks per request.`, {
        max: limits.bodyLimitBytes,
      });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return createError('unsupportedMediaType', 'The body must be JSON: send "Content-Type: application/json".', {
        allowed: ['application/json'],
      });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return createError('invalidRequestBody', 'The request body is empty; send a JSON array of task objects.');
  }
  // Other client-side failures found by Fastify itself (bad Content-Length, aborted upload, …).
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return createError('invalidRequestBody', `The request could not be read: ${error.message}.`);
  }
  return createError('internalError', 'clipgate failed to handle this request; the failure is in its log under this request id.');
}
