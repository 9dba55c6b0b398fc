import type { FastifyInstance } from 'fastify';
import { z } from 'zod';

const healthSchema = z.object({ status: z.enum(['ok', 'unavailable']) });

export interface ReadinessProbe {
  /** False while the gateway drains for shutdown, so the load balancer stops sending it work. */
  isReady(): boolean;
}

/** Liveness says the process answers; readiness says it should be given work. */
export async function healthRoutes(app: FastifyInstance, options: { readiness: ReadinessProbe }): Promise<void> {
  app.get('/health/live', { schema: { tags: ['health'], response: { 200: healthSchema } } }, async () => ({ status: 'ok' as const }));
  app.get(
    '/health/ready',
    { schema: { tags: ['health'], response: { 200: healthSchema, 503: healthSchema } } },
    async (_request, reply) => (options.readiness.isReady() ? { status: 'ok' as const } : reply.code(503).send({ status: 'unavailable' as const })),
  );
}
