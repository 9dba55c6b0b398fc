import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { createCancellation, neverCancelled } from '../../contracts/cancellation.js';
import { createError } from '../../errors.js';
import type { ApiKeys } from '../../tasks/api-keys.js';
import type { TaskService } from '../../tasks/task-service.js';
import { installBearerAuth } from '../auth.js';
import { refusedWhileDraining, type Drain } from '../drain.js';
import { ClientRequestError } from '../client-request-error.js';
import { taskArraySchema, taskResponseSchema } from '../response-schema.js';
import { principalFor } from '../route-principal.js';
import { TaskResponseCollector } from '../task-response.js';
import { readTaskArray } from '../task-array.js';
import { toWireJson } from '../wire-json.js';

export interface TaskRouteOptions {
  readonly service: TaskService;
  readonly keys: ApiKeys;
  readonly drain: Drain;
  readonly maxTasksPerRequest: number;
  /** The one answer's inline images, in megapixels: a JSON text of them must stay far below what V8 holds. */
  readonly inlineOutputMaxMegapixels: number;
}

const routeDescription = [
  'Validates each task on its own and runs the valid ones. 200 when at least one task produced data, with',
  'failed tasks listed in `errors`; otherwise the status of the dominant error: 400 (fix the request),',
  '401 (API key), 413 (body too large), 415 (not JSON), 503 (valid, but no GPU worker can take it now; retry).',
  'Members with nothing in them are left out. The key goes in `Authorization: Bearer <key>`, or in an',
  '`authentication` task first in the array.',
].join(' ');

/** Every status the route answers (the dominant error's, DESIGN §2), each in the one answer shape. */
const documentedStatuses = [200, 202, 400, 401, 404, 409, 410, 413, 415, 422, 429, 500, 502, 503, 504] as const;

/** POST /v1/tasks and its alias POST /v1: thin — parse, authorize, hand the tasks to the task service, shape the reply. */
export async function taskRoutes(app: FastifyInstance, options: TaskRouteOptions): Promise<void> {
  const { service } = options;
  installBearerAuth(app, options.keys, { keyInBody: true });
  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<string> => {
    if (options.drain.draining) throw new ClientRequestError(refusedWhileDraining());
    const tasks = readTaskArray(request.body, options.maxTasksPerRequest);
    // The bearer key was checked before the body was read; without one, the key may come first in the array.
    let principal = request.principal;
    if (!principal) {
      const authorization = service.authorize(tasks);
      if (authorization.kind === 'refused') throw new ClientRequestError(authorization.error);
      if (authorization.kind === 'unauthenticated') {
        throw new ClientRequestError(
          createError('missingApiKey', 'This endpoint needs an API key: send the header "Authorization: Bearer <key>", or an authentication task first in the array.'),
        );
      }
      principal = authorization.principal;
    }
    // The response's 'close' before it finished means the client went away: cancel its jobs. (The
    // request's own 'close' fires as soon as its body has been read, so it cannot tell.) Listened for
    // before validation, which may take a registry lookup, so a client gone by then sends no job at all.
    const cancellation = createCancellation();
    // 'close' comes once per response: `on` spares the wrapper `once` would allocate per request.
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) cancellation.cancel(new Error('the client disconnected'));
    });
    const collector = new TaskResponseCollector();
    const release = options.drain.track(cancellation);
    try {
      await service.run(tasks, { principal, cancellation, inlineMegapixels: options.inlineOutputMaxMegapixels }, collector);
    } finally {
      release();
    }
    const { status, body, retryAfterSeconds } = collector.response();
    reply.code(status);
    if (retryAfterSeconds > 0) reply.header('retry-after', String(retryAfterSeconds));
    reply.header('content-type', 'application/json; charset=utf-8');
    return toWireJson(body);
  };

  const schema = {
    tags: ['tasks'],
    summary: 'Run an array of tasks',
    description: routeDescription,
    security: [{ bearerAuth: [] }],
    body: taskArraySchema,
    response: Object.fromEntries(documentedStatuses.map((status) => [status, taskResponseSchema])),
  };
  // The array is validated task by task by the task service, so one bad task cannot sink the rest; the
  // schema is here for the OpenAPI document. The handler writes the JSON itself (seeds beyond 2^53).
  const routeOptions = {
    schema,
    validatorCompiler: () => (value: unknown) => ({ value }),
    serializerCompiler: () => (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value)),
  };
  app.post('/v1/tasks', routeOptions, handler);
  app.post('/v1', { ...routeOptions, schema: { ...schema, hide: true } }, handler);

  // GET /v1/tasks/{taskUUID}: getResponse for clients that poll over plain HTTP; the same task, the same answer.
  app.get(
    '/v1/tasks/:taskUUID',
    {
      ...routeOptions,
      schema: {
        tags: ['tasks'],
        summary: 'What became of a task (getResponse)',
        description: 'The task of this API key with that taskUUID, from the task ledger: its results (each with `status: "success"`), `{status: "processing"}` while it runs, or its errors; `taskNotFound` when this key sent no such task or its record expired.',
        security: [{ bearerAuth: [] }],
        params: z.object({ taskUUID: z.string().meta({ description: 'The taskUUID the task was sent with.' }) }),
        response: Object.fromEntries([200, 400, 401, 404, 429, 500, 503].map((status) => [status, taskResponseSchema])),
      },
    },
    async (request: FastifyRequest, reply: FastifyReply): Promise<string> => {
      const { taskUUID } = request.params as { taskUUID: string };
      const principal = principalFor(request, service);
      const collector = new TaskResponseCollector();
      await service.run([{ taskType: 'getResponse', taskUUID }], { principal, cancellation: neverCancelled }, collector);
      const { status, body, retryAfterSeconds } = collector.response();
      reply.code(status);
      if (retryAfterSeconds > 0) reply.header('retry-after', String(retryAfterSeconds));
      reply.header('content-type', 'application/json; charset=utf-8');
      return toWireJson(body);
    },
  );
}

