import { createError } from '../errors.js';
import { ClientRequestError } from './client-request-error.js';

/** The body of a REST request or WebSocket frame as a task array, within MAX_TASKS_PER_REQUEST; ClientRequestError otherwise. */
export function readTaskArray(body: unknown, maxTasks: number): unknown[] {
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
