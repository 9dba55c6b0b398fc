import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** An id a client may pass in x-request-id; anything else (too long, odd characters) is replaced. */
const acceptableRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdOf(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && acceptableRequestId.test(given) ? given : randomUUID();
}
