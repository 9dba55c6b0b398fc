import { statusOf, type ApiError, type ApiWarning } from '../errors.js';
import type { TaskResult } from '../contracts/task-result.js';
import type { TaskSink } from '../tasks/task-type.js';

/**
 * The REST answer to a task array, in Runware's shape (DESIGN §2): `{ data?, errors?, warnings? }`, each
 * member present only when it holds something — Runware's success answers carry `data` alone, and clients
 * (runware-sdk) take the mere presence of `errors` for a failure. When no task produced data, `error` repeats
 * the dominant error's code and message at the top level, for clients that read only that
 * (@runware/ai-sdk-provider).
 */
export interface TaskResponse {
  data?: TaskResult[];
  errors?: ApiError[];
  warnings?: ApiWarning[];
  error?: TopLevelError;
}

export interface TopLevelError {
  readonly code: ApiError['code'];
  readonly message: string;
  readonly parameter?: string;
}

/**
 * When several tasks fail for different reasons, the status is the first of these present: what the
 * client must fix (auth, size, the request itself) before what retrying may fix (capacity, timeouts,
 * worker failures).
 */
// 202 last: a sync task that continues asynchronously is not a failure, and says so only when nothing else does.
const statusPrecedence = [401, 403, 413, 415, 400, 409, 422, 404, 410, 429, 503, 504, 502, 500, 202] as const;

/** DESIGN §2: 200 when any task produced data; otherwise the status of the dominant error class. */
export function responseStatus(response: { readonly data?: readonly unknown[]; readonly errors?: readonly ApiError[] }): number {
  const errors = response.errors ?? [];
  if ((response.data?.length ?? 0) > 0 || errors.length === 0) return 200;
  const present = new Set(errors.map((error) => statusOf(error.code)));
  return statusPrecedence.find((status) => present.has(status)) ?? 500;
}

export function errorResponse(error: ApiError): TaskResponse {
  return { errors: [error], error: topLevel(error) };
}

function topLevel(error: ApiError): TopLevelError {
  return error.parameter === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, parameter: error.parameter };
}

interface TaskAnswers {
  results: TaskResult[] | undefined;
  errors: ApiError[] | undefined;
  warnings: ApiWarning[] | undefined;
}

/**
 * Collects what the task service reports for one REST request, task by task, so the answer lists each
 * task's results, errors and warnings in the order of the tasks, whatever order they finished in.
 */
export class TaskResponseCollector implements TaskSink {
  private readonly answers: (TaskAnswers | undefined)[] = [];

  result(index: number, result: TaskResult): void {
    const answers = this.answersOf(index);
    (answers.results ??= []).push(result);
  }

  errors(index: number, errors: readonly ApiError[]): void {
    const answers = this.answersOf(index);
    (answers.errors ??= []).push(...errors);
  }

  warnings(index: number, warnings: readonly ApiWarning[]): void {
    const answers = this.answersOf(index);
    (answers.warnings ??= []).push(...warnings);
  }

  end(): void {
    // The REST answer is sent once every task has ended, when the task service's run resolves.
  }

  /** The answer so far, and its status. */
  response(): { status: number; body: TaskResponse; retryAfterSeconds: number } {
    let data: TaskResult[] | undefined;
    let errors: ApiError[] | undefined;
    let warnings: ApiWarning[] | undefined;
    for (const answers of this.answers) {
      if (!answers) continue;
      if (answers.results) data = data ? data.concat(answers.results) : answers.results;
      if (answers.errors) errors = errors ? errors.concat(answers.errors) : answers.errors;
      if (answers.warnings) warnings = warnings ? warnings.concat(answers.warnings) : answers.warnings;
    }
    const body: TaskResponse = {};
    if (data) body.data = data;
    if (errors) body.errors = errors;
    if (warnings) body.warnings = warnings;
    const status = responseStatus(body);
    let retryAfterSeconds = 0;
    if (errors) {
      if (status !== 200) {
        const dominant = errors.find((error) => statusOf(error.code) === status);
        if (dominant) body.error = topLevel(dominant);
      }
      // Capacity errors say when to come back; the header carries the longest wait any of them asks for.
      for (const error of errors) retryAfterSeconds = Math.max(retryAfterSeconds, error.retryAfter ?? 0);
    }
    return { status, body, retryAfterSeconds };
  }

  private answersOf(index: number): TaskAnswers {
    let answers = this.answers[index];
    if (!answers) {
      answers = { results: undefined, errors: undefined, warnings: undefined };
      this.answers[index] = answers;
    }
    return answers;
  }
}
