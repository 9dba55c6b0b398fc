import type { ApiError, ApiWarning, ErrorDetails } from '../errors.js';
import type { Cancellation } from '../contracts/cancellation.js';
import type { TaskResult } from '../contracts/task-result.js';
import type { Principal } from '../contracts/principal.js';

/**
 * The seam between transports and task types (DESIGN §1): REST and WebSocket hand the task service an array
 * of tasks and a sink; each task type is one module that takes the tasks of its type and reports what
 * becomes of each through the sink. Neither side knows the other's details.
 */

/** One task of a request, as the client sent it, with its position and the ids its answers carry. */
export interface IncomingTask {
  readonly index: number;
  readonly raw: Record<string, unknown>;
  readonly details: ErrorDetails;
  /** Errors the service found before the task type saw it (a shared taskUUID); the task is not run. */
  readonly refusals: readonly ApiError[];
}

export interface TaskContext {
  /** Whose request this is; answers and (later) stored tasks belong to it. Undefined before authentication. */
  readonly principal: Principal | undefined;
  /** Fires when nobody will read the answers any more; running jobs are cancelled. */
  readonly cancellation: Cancellation;
  /** The WebSocket session the answers go to, for the authentication answer; absent over REST. */
  readonly connectionSessionUUID?: string;
  /**
   * The most megapixels of inline images (base64Data, dataURI) the answer may carry, over all its tasks; absent:
   * no bound (a WebSocket sends each image in a frame of its own).
   */
  readonly inlineMegapixels?: number;
  /**
   * Asked, for the tasks that do work (types that need a principal) and only after the service's own checks,
   * whether each runs; absent: all run.
   */
  readonly admit?: (tasks: readonly IncomingTask[]) => Promise<readonly Admission[]>;
}

/**
 * Where a task type reports: results as soon as each exists (one image, a pong), a task's errors together,
 * warnings before the task's first result, then `end` once the task has given everything. Every task ends
 * in results or errors, never neither.
 */
export interface TaskSink {
  result(index: number, result: TaskResult): void;
  errors(index: number, errors: readonly ApiError[]): void;
  warnings(index: number, warnings: readonly ApiWarning[]): void;
  end(index: number): void;
}

/** What a transport says about a task before it runs (the WebSocket's sessions: run it, or its answers are coming already). */
export type Admission = 'run' | 'skip' | ApiError;

export interface TaskType {
  readonly taskType: string;
  /**
   * False for the task types that run before a caller has authenticated (authentication itself, ping). Such
   * a type answers within run()'s first synchronous step: the service starts them before it awaits anything,
   * so their answers come first in a WebSocket frame's answers.
   */
  readonly needsPrincipal: boolean;
  /**
   * Runs every task of this type in one request together (so that, e.g., all their models resolve in one
   * round trip); resolves once each has ended in results or errors.
   */
  run(tasks: readonly IncomingTask[], context: TaskContext, sink: TaskSink): Promise<void>;
}
