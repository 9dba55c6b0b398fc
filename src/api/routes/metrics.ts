import type { FastifyInstance } from 'fastify';
import { createError } from '../../errors.js';
import type { GatewayMetrics } from '../../metrics/gateway-metrics.js';
import { createApiKeys } from '../../tasks/api-keys.js';
import { bearerKeyOf } from '../auth.js';
import { ClientRequestError } from '../client-request-error.js';

/**
 * GET /metrics in Prometheus' text format, for the operator's scraper rather than for clients: outside the
 * OpenAPI document and the API keys; behind its own bearer token when METRICS_TOKEN is set.
 */
export async function metricsRoutes(app: FastifyInstance, options: { metrics: GatewayMetrics; token: string | undefined }): Promise<void> {
  // One key, compared the way API keys are (digests, timingSafeEqual).
  const token = options.token === undefined ? undefined : createApiKeys([options.token]);
  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (token) {
      const presented = bearerKeyOf(request);
      if (presented === undefined || !token.verify(presented)) {
        throw new ClientRequestError(createError('invalidMetricsToken', '/metrics needs the header "Authorization: Bearer <METRICS_TOKEN>" with this gateway\'s metrics token.'));
      }
    }
    const body = await options.metrics.exposition();
    return reply.type(options.metrics.registry.contentType).send(body);
  });
}
