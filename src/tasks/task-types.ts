import type { ApiKeys } from './api-keys.js';
import { createAuthenticationTaskType } from './authentication/authentication-task.js';
import { createGetResponseTaskType } from './get-response/get-response-task.js';
import { createImageInferenceTaskType, type ImageInferenceDependencies } from './image-inference/image-inference-task.js';
import { pingTaskType } from './ping/ping-task.js';
import type { TaskType } from './task-type.js';

/** What the task types need together: image inference's stages, and the keys authentication checks. */
export interface TaskTypeDependencies extends ImageInferenceDependencies {
  readonly keys: ApiKeys;
}

/** The one registry of task types: a new type is a module of its own, added here. */
export function createTaskTypes(dependencies: TaskTypeDependencies): TaskType[] {
  return [
    createImageInferenceTaskType(dependencies),
    createAuthenticationTaskType(dependencies.keys),
    pingTaskType,
    createGetResponseTaskType(dependencies.ledger),
  ];
}
