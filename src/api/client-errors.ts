import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import { createError, statusOf, type ApiError } from '../errors.js';
import { errorResponse } from './task-response.js';

/**
 * Answers for what Node's HTTP parser refuses before Fastify sees a request — a malformed request, headers too
 * large, headers or body too slow — in the documented error shape instead of Fastify's, then closes the
 * connection (the parser cannot go on after any of them).
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket, logger: Pick<FastifyBaseLogger, 'debug'>): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  logger.debug({ err: error }, 'client error');
  const apiError =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? createError('requestTimeout', 'The request did not arrive in time: its headers and body must be sent within the gateway\'s deadlines (HTTP_HEADERS_TIMEOUT_MS, HTTP_REQUEST_TIMEOUT_MS).')
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? createError('headersTooLarge', 'The request headers are larger than 16 KiB. Send fewer or shorter headers.')
        : createError('malformedRequest', `The HTTP request cannot be read (${error.code ?? 'parse error'}).`);
  writeRawError(socket, apiError);
  socket.destroy();
}

/** A whole HTTP response written on a socket that has no request object (or none any more). */
export function writeRawError(socket: Socket, apiError: ApiError): void {
  if (!socket.writable) return;
  const status = statusOf(apiError.code);
  const body = JSON.stringify(errorResponse(apiError));
  socket.write(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
