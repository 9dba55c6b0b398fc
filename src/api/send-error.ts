import type { FastifyReply } from 'fastify';
import { statusOf, type ApiError } from '../errors.js';
import { errorResponse } from './task-response.js';

/** Replies with one error in the documented shape and the status its catalogue entry gives. */
export function sendError(reply: FastifyReply, error: ApiError): FastifyReply {
  return reply.code(statusOf(error.code)).send(errorResponse(error));
}
