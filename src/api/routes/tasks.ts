import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createCancellation } from '../../contracts/cancellation.js';
import type { Dispatcher, ImageResult } from '../../contracts/dispatcher.js';
import { createError, type ApiError } from '../../errors.js';
import type { ModelResolver } from '../../contracts/model-resolver.js';
import { validateTasks } from '../../tasks/image-inference/validate.js';
import { ClientRequestError } from '../client-request-error.js';
import { taskArraySchema, taskResponseSchema } from '../response-schema.js';
import { responseStatus, type TaskResponse } from '../task-response.js';

export interface TaskRouteOptions {
  readonly resolver: ModelResolver;
  readonly dispatcher: Dispatcher;
  readonly limits: { readonly maxTasksPerRequest: number; readonly maxEmbeddingsPerTask: number };
}

const routeDescription = [
  'Validates each task on its own and runs the valid ones. 200 when at least one task produced data, with',
  'failed tasks listed in `errors`; otherwise the status of the dominant error: 400 (fix the request),',
  '401 (API key), 413 (body too large), 415 (not JSON), 503 (valid, but no GPU worker can take it now; retry).',
].join(' ');

const documentedStatuses = [200, 400, 401, 413, 415, 503] as const;

/** POST /v1/tasks and its alias POST /v1: thin — parse, validate, dispatch, shape the reply. */
export async function taskRoutes(app: FastifyInstance, options: TaskRouteOptions): Promise<void> {
  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<TaskResponse> => {
    const tasks = requireTaskArray(request.body, options.limits.maxTasksPerRequest);
    // The response's 'close' before it finished means the client went away: cancel its jobs. (The
    // request's own 'close' fires as soon as its body has been read, so it cannot tell.) Listened for
    // before validation, which may take a registry lookup, so a client gone by then sends no job at all.
    const cancellation = createCancellation();
    // 'close' comes once per response: `on` spares the wrapper `once` would allocate per request.
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) cancellation.cancel(new Error('the client disconnected'));
    });
    const verdicts = await validateTasks(tasks, { resolver: options.resolver, limits: options.limits });
    const outcomes = await Promise.all(
      verdicts.map((verdict) =>
        verdict.valid
          ? options.dispatcher.dispatch(verdict.valid, {
              details: { taskUUID: verdict.valid.task.taskUUID, taskType: verdict.valid.task.taskType, taskIndex: verdict.index },
              cancellation,
            })
          : undefined,
      ),
    );

    const data: ImageResult[] = [];
    const errors: ApiError[] = verdicts.flatMap((verdict) => verdict.errors);
    for (const outcome of outcomes) {
      if (outcome?.kind === 'images') data.push(...outcome.images);
      else if (outcome?.kind === 'failed') errors.push(outcome.error);
    }
    const response: TaskResponse = { data, errors, warnings: verdicts.flatMap((verdict) => verdict.warnings) };
    reply.code(responseStatus(response));
    // Capacity errors say when to come back; the header carries the longest wait any of them asks for.
    let retryAfter = 0;
    for (const error of errors) retryAfter = Math.max(retryAfter, error.retryAfter ?? 0);
    if (retryAfter > 0) reply.header('retry-after', String(retryAfter));
    return response;
  };

  const schema = {
    tags: ['tasks'],
    summary: 'Run an array of tasks',
    description: routeDescription,
    security: [{ bearerAuth: [] }],
    body: taskArraySchema,
    response: Object.fromEntries(documentedStatuses.map((status) => [status, taskResponseSchema])),
  };
  // The array is validated task by task in the validation stage, so one bad task cannot sink the rest;
  // the schema is here for the OpenAPI document. Responses are plain JSON.
  const routeOptions = {
    schema,
    validatorCompiler: () => (value: unknown) => ({ value }),
    serializerCompiler: () => (value: unknown) => JSON.stringify(value),
  };
  app.post('/v1/tasks', routeOptions, handler);
  app.post('/v1', { ...routeOptions, schema: { ...schema, hide: true } }, handler);
}

function requireTaskArray(body: unknown, maxTasks: number): unknown[] {
  if (!Array.isArray(body)) {
    const got = body === undefined || body === null ? 'no tasks (an empty body or null)' : typeof body === 'object' ? 'a single object' : typeof body;
    throw new ClientRequestError(
      createError('invalidRequestBody', `The body must be a JSON array of tasks; got ${got}. Wrap a single task in brackets: [ { "taskType": "imageInference", … } ].`),
    );
  }
  if (body.length === 0) {
    throw new ClientRequestError(createError('invalidRequestBody', 'The task array is empty; send at least one task.', { min: 1 }));
  }
  if (body.length > maxTasks) {
    throw new ClientRequestError(
      createError('tooManyTasks', `The request holds ${body.length} tasks; this gateway takes at most ${maxTasks} per request. Split it into several requests.`, {
        max: maxTasks,
      }),
    );
  }
  return body;
}
