import type { FastifyServerOptions } from 'fastify';
import type { DestinationStream } from 'pino';
import type { Config } from './config.js';

/**
 * pino options: JSON lines with the request id on every line of a request; credentials never reach the
 * log, whichever serializer touches the headers.
 */
export function loggerOptions(level: Config['logLevel'], stream?: DestinationStream): NonNullable<FastifyServerOptions['logger']> {
  return {
    level,
    ...(stream && { stream }),
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'],
      censor: '[redacted]',
    },
    serializers: {
      req(request: { method: string; url: string; headers: Record<string, unknown> }) {
        return { method: request.method, url: request.url, headers: request.headers };
      },
    },
  };
}
