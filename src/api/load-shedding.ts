import underPressure from '@fastify/under-pressure';
import type { FastifyInstance } from 'fastify';
import { createError } from '../errors.js';
import { errorResponse } from './task-response.js';

export interface LoadSheddingOptions {
  /** Mean event-loop delay over a sample, past which requests are refused; 0: never. */
  readonly maxEventLoopDelayMs: number;
  /** Heap in use past which requests are refused; 0: never. */
  readonly maxHeapUsedBytes: number;
  readonly retryAfterSeconds: number;
}

/**
 * Probes answer whatever the pressure (a shed replica is alive), so does the scraper (an overloaded replica is
 * when its metrics matter), and workers must always get their files.
 */
const NEVER_SHED = /^\/(health|metrics|v1\/embeddings)(\/|$)/;

/**
 * Load shedding (@fastify/under-pressure): a replica whose event loop lags or whose heap is full refuses new
 * requests at once with `overloaded` (503, Retry-After) in the documented shape, instead of taking work it
 * would answer late or not at all; the load balancer sends them to another replica.
 */
export async function installLoadShedding(app: FastifyInstance, options: LoadSheddingOptions): Promise<void> {
  if (options.maxEventLoopDelayMs === 0 && options.maxHeapUsedBytes === 0) return;
  await app.register(underPressure, {
    maxEventLoopDelay: options.maxEventLoopDelayMs,
    maxHeapUsedBytes: options.maxHeapUsedBytes,
    sampleInterval: 250,
    retryAfter: options.retryAfterSeconds,
    // Sent here; the request then goes no further (Fastify stops a request whose reply is sent in onRequest).
    pressureHandler: (request, reply, type, value) => {
      if (NEVER_SHED.test(request.url)) return;
      const measured = type === 'eventLoopDelay' ? `its event loop lags ${Math.round(Number(value))} ms (SHED_EVENT_LOOP_DELAY_MS)` : `its heap holds ${Math.round(Number(value) / 2 ** 20)} MiB (SHED_HEAP_USED_BYTES)`;
      reply
        .code(503)
        .header('retry-after', String(options.retryAfterSeconds))
        .header('content-type', 'application/json; charset=utf-8')
        .send(JSON.stringify(errorResponse(createError('overloaded', `This gateway replica is overloaded: ${measured}. Nothing was done; retry in a moment (another replica may take it).`, { retryAfter: options.retryAfterSeconds }))));
    },
  });
}
