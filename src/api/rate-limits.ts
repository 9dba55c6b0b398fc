import { createHash } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RedisClient } from '../cache/redis-clients.js';
import { createError, type ApiError, type ErrorDetails } from '../errors.js';
import { ClientRequestError } from './client-request-error.js';

export interface RateLimitOptions {
  /** Requests one API key may make per window; 0 turns limiting off. */
  readonly max: number;
  readonly windowMs: number;
  /**
   * Shared by every replica when given, so the limit is the key's, not the key's per replica. One script on
   * one key per request: one Redis, Sentinel's master or a Cluster alike.
   */
  readonly redis?: RedisClient;
}

/** Routes a limit does not apply to: probes, the scraper, the API document, and the files workers fetch. */
const UNLIMITED = /^\/(health|metrics|docs|v1\/embeddings)(\/|$)/;

/**
 * Counts one WebSocket frame of tasks against the key of the socket's request (its principal is set once the
 * socket has authenticated), with that key's REST requests; a refusal for each of its tasks past the limit.
 */
export type FrameRateLimit = (request: FastifyRequest) => Promise<((details: ErrorDetails) => ApiError) | undefined>;

/**
 * Requests per API key (@fastify/rate-limit), counted in Redis when it is configured: `RateLimit-Limit`,
 * `RateLimit-Remaining` and `RateLimit-Reset` on every limited answer, `Retry-After` and `rateLimitExceeded`
 * (429, in the documented shape) past the limit. Counted after the body is read, so a key sent Runware's
 * way (an authentication task first in the array) is the key counted; a request without a key counts against
 * its address. While Redis does not answer, requests are let through rather than refused. Returns the limit
 * for WebSocket frames (none without a limit).
 */
export async function installRateLimits(app: FastifyInstance, options: RateLimitOptions): Promise<FrameRateLimit | undefined> {
  if (options.max === 0) return undefined;
  await app.register(rateLimit, {
    global: true,
    max: options.max,
    timeWindow: options.windowMs,
    hook: 'preHandler',
    enableDraftSpec: true,
    skipOnError: true,
    nameSpace: 'clipgate:v1:rate-limit:',
    ...(options.redis && { redis: options.redis }),
    allowList: (request) => UNLIMITED.test(request.url),
    keyGenerator: keyOf,
    errorResponseBuilder: (_request, context) => new ClientRequestError(rateLimitError(context.max, options.windowMs, context.ttl, {})),
  });
  // Without options: the plugin's own store and key generator, so frames and requests share one count (given
  // options, it would make a child store that counts apart).
  const limiter = app.createRateLimit();
  return async (request) => {
    const outcome = await limiter(request);
    // isAllowed means "on the allow list"; past the limit is isExceeded.
    if (outcome.isAllowed || !outcome.isExceeded) return undefined;
    return (details) => rateLimitError(outcome.max, options.windowMs, outcome.ttl, details);
  };
}

function rateLimitError(max: number, windowMs: number, ttlMs: number, details: ErrorDetails): ApiError {
  const retryAfter = Math.max(1, Math.ceil(ttlMs / 1000));
  return createError('rateLimitExceeded', `This API key made more than ${max} requests in ${Math.round(windowMs / 1000)} s (RATE_LIMIT_PER_MINUTE; a WebSocket frame of tasks counts as one); retry in ${retryAfter} s.`, {
    ...details,
    retryAfter,
  });
}

function keyOf(request: FastifyRequest): string {
  if (request.principal) return `key:${request.principal.id}`;
  const body = request.body;
  // Runware's payload auth: the same digest the key's principal has, so both ways count together.
  if (Array.isArray(body)) {
    const first: unknown = body[0];
    if (typeof first === 'object' && first !== null && (first as { taskType?: unknown }).taskType === 'authentication') {
      const apiKey = (first as { apiKey?: unknown }).apiKey;
      if (typeof apiKey === 'string') return `key:${createHash('sha256').update(apiKey).digest('hex')}`;
    }
  }
  return `ip:${request.ip}`;
}
