import { z } from 'zod';
import { createError, type ApiError, type ErrorDetails } from '../../errors.js';
import type { ApiKeys } from '../api-keys.js';
import { issuesToErrors } from '../structural-errors.js';
import type { TaskType } from '../task-type.js';

/**
 * `authentication` (Runware's payload auth): `{taskType: "authentication", apiKey, connectionSessionUUID?}`.
 * First in a REST array it stands in for the Bearer header; first on a WebSocket it opens the session, or
 * resumes the one it names. Its answer is `{taskType: "authentication", connectionSessionUUID}` (no session
 * over REST).
 */

export const AUTHENTICATION = 'authentication';

/** The task's shape: the OpenAPI document's, and what readCredentials checks a task against. */
export const authenticationTaskSchema = z
  .strictObject({
    taskType: z.literal(AUTHENTICATION),
    apiKey: z.string().min(1).max(1024),
    connectionSessionUUID: z.uuid().optional().meta({ description: 'WebSocket only: the session to resume (its results that finished meanwhile are delivered).' }),
    taskUUID: z.string().max(128).optional(),
  })
  .meta({ id: 'AuthenticationTask', description: 'First in the array (or first on a WebSocket): the API key, as an alternative to the bearer header.' });

const knownKeys = Object.keys(authenticationTaskSchema.shape);

export interface Credentials {
  readonly apiKey: string;
  /** A session to resume (WebSocket); undefined to open a new one. */
  readonly connectionSessionUUID: string | undefined;
}

/** The credentials of an authentication task, or the errors that say what is wrong with it. */
export function readCredentials(raw: Record<string, unknown>, details: ErrorDetails): Credentials | { readonly errors: ApiError[] } {
  const { apiKey } = raw;
  if (typeof apiKey !== 'string' || apiKey.length === 0) {
    return {
      errors: [createError('missingApiKey', 'The authentication task needs its apiKey: {"taskType": "authentication", "apiKey": "<key>"}.', { ...details, parameter: 'apiKey' })],
    };
  }
  const parsed = authenticationTaskSchema.safeParse(raw);
  if (!parsed.success) return { errors: issuesToErrors(parsed.error.issues, { input: raw, knownKeys: () => knownKeys, details }) };
  return { apiKey: parsed.data.apiKey, connectionSessionUUID: parsed.data.connectionSessionUUID };
}

export function invalidKeyError(details: ErrorDetails): ApiError {
  return createError('invalidApiKey', 'The API key is not valid. Check it, or ask the operator for one.', details);
}

export function createAuthenticationTaskType(keys: ApiKeys): TaskType {
  return {
    taskType: AUTHENTICATION,
    needsPrincipal: false,
    async run(tasks, context, sink) {
      for (const task of tasks) {
        const credentials = readCredentials(task.raw, task.details);
        if ('errors' in credentials) {
          sink.errors(task.index, [...credentials.errors, ...task.refusals]);
        } else if (!keys.verify(credentials.apiKey)) {
          sink.errors(task.index, [invalidKeyError(task.details)]);
        } else if (task.refusals.length > 0) {
          sink.errors(task.index, task.refusals);
        } else {
          const taskUUID = task.details.taskUUID;
          sink.result(task.index, {
            taskType: 'authentication',
            ...(context.connectionSessionUUID !== undefined && { connectionSessionUUID: context.connectionSessionUUID }),
            ...(taskUUID !== undefined && { taskUUID }),
          });
        }
        sink.end(task.index);
      }
    },
  };
}
