import type { FastifyInstance } from 'fastify';
import type { GatewayMetrics } from '../metrics/gateway-metrics.js';

/** Every answered request into the latency histogram, by its route's pattern (a URL would be unbounded). */
export function recordRequestMetrics(app: FastifyInstance, metrics: GatewayMetrics): void {
  // Callback style, as the other hooks on every request: an async hook costs a promise each.
  app.addHook('onResponse', (request, reply, done) => {
    metrics.requestFinished(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
}
