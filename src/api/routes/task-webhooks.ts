import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { LedgerUnavailableError, type TaskLedger } from '../../contracts/task-ledger.js';
import type { ApiKeys } from '../../tasks/api-keys.js';
import { ledgerUnavailable, taskNotFound } from '../../tasks/task-record-errors.js';
import type { TaskService } from '../../tasks/task-service.js';
import { installBearerAuth } from '../auth.js';
import { ClientRequestError } from '../client-request-error.js';
import { taskResponseSchema } from '../response-schema.js';
import { principalFor } from '../route-principal.js';

const attemptSchema = z
  .object({
    imageUUID: z.string().meta({ description: 'The result this POST carried (`errors` for a failed task\'s errors).' }),
    attempt: z.int(),
    at: z.int().meta({ description: 'When it was made, in epoch milliseconds.' }),
    delivered: z.boolean(),
    status: z.int().optional().meta({ description: "The receiver's HTTP status, where it answered." }),
    reason: z.string().optional(),
  })
  .meta({ id: 'WebhookAttempt' });

/** GET /v1/tasks/{taskUUID}/webhooks: every POST made to the task's webhookURL, oldest first — what a receiver's operator asks first. */
export async function taskWebhookRoutes(app: FastifyInstance, options: { readonly ledger: TaskLedger; readonly keys: ApiKeys; readonly service: TaskService }): Promise<void> {
  installBearerAuth(app, options.keys, { keyInBody: false });
  app.get(
    '/v1/tasks/:taskUUID/webhooks',
    {
      schema: {
        tags: ['tasks'],
        summary: "The attempts to deliver a task's webhooks",
        security: [{ bearerAuth: [] }],
        params: z.object({ taskUUID: z.uuid() }),
        response: { 200: z.object({ data: z.array(attemptSchema) }), ...Object.fromEntries([400, 401, 404, 429, 503].map((status) => [status, taskResponseSchema])) },
      },
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const { taskUUID } = request.params as { taskUUID: string };
      const principal = principalFor(request, options.service);
      try {
        if (!(await options.ledger.get(principal.id, taskUUID))) {
          throw new ClientRequestError(taskNotFound(taskUUID, options.ledger.ttlSeconds));
        }
        return reply.send({ data: await options.ledger.webhookAttempts(principal.id, taskUUID) });
      } catch (error) {
        if (!(error instanceof LedgerUnavailableError)) throw error;
        throw new ClientRequestError(ledgerUnavailable());
      }
    },
  );
}
