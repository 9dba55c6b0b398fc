import { z } from 'zod';
import { createError, type ApiError, type ErrorDetails } from '../../errors.js';
import type { ApiKeys } from '../api-keys.js';
import type { TaskType } from '../task-type.js';

/**
 * `authentication` (Runware's payload auth): `{taskType: "authentication", apiKey, connectionSessionUUID?}`.
 * First in a REST array it stands in for the Bearer header; first on a WebSocket it opens the session, or
 * resumes the one it names. Its answer is `{taskType: "authentication", connectionSessionUUID}` (no session
 * over REST).
 */

export const AUTHENTICATION = 'authentication';

/** For the OpenAPI document; readCredentials below is what checks a task. */
export const authenticationTaskSchema = z
  .object({
    taskType: z.literal(AUTHENTICATION),
    apiKey: z.string().min(1).max(1024),
    connectionSessionUUID: z.uuid().optional().meta({ description: 'WebSocket only: the session to resume (its results that finished meanwhile are delivered).' }),
    taskUUID: z.string().optional(),
  })
  .meta({ id: 'AuthenticationTask', description: 'First in the array (or first on a WebSocket): the API key, as an alternative to the bearer header.' });

export interface Credentials {
  readonly apiKey: string;
  /** A session to resume (WebSocket); undefined to open a new one. */
  readonly connectionSessionUUID: string | undefined;
}

const sessionUUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_KEY_LENGTH = 1024;

/** The credentials of an authentication task, or the error that says what is wrong with it. */
export function readCredentials(raw: Record<string, unknown>, details: ErrorDetails): Credentials | ApiError {
  const { apiKey, connectionSessionUUID } = raw;
  if (typeof apiKey !== 'string' || apiKey.length === 0 || apiKey.length > MAX_KEY_LENGTH) {
    return createError('missingApiKey', 'The authentication task needs its apiKey: {"taskType": "authentication", "apiKey": "<key>"}.', {
      ...details,
      parameter: 'apiKey',
    });
  }
  if (connectionSessionUUID !== undefined && (typeof connectionSessionUUID !== 'string' || !sessionUUID.test(connectionSessionUUID))) {
    return createError('invalidParameter', 'connectionSessionUUID must be the UUID an earlier authentication answered with; leave it out to open a new session.', {
      ...details,
      parameter: 'connectionSessionUUID',
    });
  }
  return { apiKey, connectionSessionUUID };
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
        if ('code' in credentials) {
          sink.errors(task.index, [credentials, ...task.refusals]);
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
