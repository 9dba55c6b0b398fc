import type { Dispatcher } from '../contracts/dispatcher.js';
import type { ModelResolver } from '../contracts/model-resolver.js';
import type { JobQueue } from '../contracts/job-queue.js';
import type { QueuedTask } from '../contracts/queued-task.js';
import type { TaskLedger } from '../contracts/task-ledger.js';
import type { Webhooks } from '../contracts/webhooks.js';
import type { ApiKeys } from './api-keys.js';
import { createAuthenticationTaskType } from './authentication/authentication-task.js';
import { createGetResponseTaskType } from './get-response/get-response-task.js';
import { createImageInferenceTaskType } from './image-inference/image-inference-task.js';
import type { RuleLimits } from './image-inference/model-rules.js';
import { pingTaskType } from './ping/ping-task.js';
import type { TaskType } from './task-type.js';

export interface TaskTypeDependencies {
  readonly keys: ApiKeys;
  readonly resolver: ModelResolver;
  readonly dispatcher: Dispatcher;
  readonly limits: RuleLimits;
  readonly lookupsPerRequest?: number;
  readonly ledger: TaskLedger;
  readonly asyncTasks?: JobQueue<QueuedTask>;
  readonly webhooks?: Webhooks;
  readonly syncWaitLimitMs?: number;
  readonly syncAbandonedAfterMs?: number;
  readonly logger?: { warn(object: object, message: string): void };
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
