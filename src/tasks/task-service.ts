import { createError, type ApiError, type ErrorDetails } from '../errors.js';
import type { ApiKeys } from './api-keys.js';
import { AUTHENTICATION, invalidKeyError, readCredentials } from './authentication/authentication-task.js';
import type { Principal } from '../contracts/principal.js';
import { silentMetrics, type MetricsRecorder } from '../contracts/metrics-recorder.js';
import { observedSink } from './observed-sink.js';
import type { IncomingTask, TaskContext, TaskSink, TaskType } from './task-type.js';

/**
 * The one task service under every transport (DESIGN §1): takes an array of tasks as the client sent it,
 * answers what no task type can (not an object, an unknown taskType, a taskUUID shared in the request, a
 * missing key), and hands each task type its tasks. Transports call `authorize` and `run`, nothing else.
 */

export type Authorization =
  | { readonly kind: 'authorized'; readonly principal: Principal; readonly resumeSession: string | undefined }
  | { readonly kind: 'unauthenticated' }
  | { readonly kind: 'refused'; readonly error: ApiError };

export interface TaskService {
  /**
   * Who sends these tasks, by the key of a leading authentication task (Runware's payload auth over REST,
   * the first frame of a WebSocket). `unauthenticated` when there is none on a gateway with keys. A bearer
   * header is the transport's to check (ApiKeys.verify), before the body is read.
   */
  authorize(tasks: readonly unknown[]): Authorization;
  /** Runs every task; resolves when each has ended in results or errors on the sink. */
  run(tasks: readonly unknown[], context: TaskContext, sink: TaskSink): Promise<void>;
  readonly taskTypes: readonly string[];
}

export function createTaskService(taskTypes: readonly TaskType[], keys: ApiKeys, recorder: MetricsRecorder = silentMetrics): TaskService {
  const byName = new Map(taskTypes.map((type) => [type.taskType, type]));
  const names = taskTypes.map((type) => type.taskType);
  const known: ReadonlySet<string> = new Set(names);
  const observed = recorder !== silentMetrics;

  return {
    taskTypes: names,
    authorize(tasks) {
      const first = tasks[0];
      if (isPlainObject(first) && first['taskType'] === AUTHENTICATION) {
        const details: ErrorDetails = { taskType: AUTHENTICATION };
        const credentials = readCredentials(first, details);
        if ('errors' in credentials) return { kind: 'refused', error: credentials.errors[0]! };
        const principal = keys.verify(credentials.apiKey);
        return principal ? { kind: 'authorized', principal, resumeSession: credentials.connectionSessionUUID } : { kind: 'refused', error: invalidKeyError(details) };
      }
      return keys.open ? { kind: 'authorized', principal: keys.anonymous, resumeSession: undefined } : { kind: 'unauthenticated' };
    },

    async run(tasks, context, clientSink) {
      const sink = observed ? observedSink(clientSink, tasks, known, recorder) : clientSink;
      const groups = new Map<TaskType, IncomingTask[]>();
      const incoming: IncomingTask[] = [];
      const types: TaskType[] = [];
      for (let index = 0; index < tasks.length; index++) {
        const raw = tasks[index];
        if (!isPlainObject(raw)) {
          const kind = raw === null ? 'null' : Array.isArray(raw) ? 'an array' : typeof raw;
          refuse(sink, index, createError('invalidTask', `task ${index} must be a JSON object with taskType and taskUUID; got ${kind}.`, { taskIndex: index }));
          continue;
        }
        const details = detailsOf(raw, index);
        const type = typeof raw['taskType'] === 'string' ? byName.get(raw['taskType']) : undefined;
        if (!type) {
          refuse(sink, index, unsupportedTaskType(raw['taskType'], details, names));
          continue;
        }
        if (type.needsPrincipal && !context.principal) {
          refuse(
            sink,
            index,
            createError('missingApiKey', 'Authenticate first: send {"taskType": "authentication", "apiKey": "<key>"} before other tasks (or the header "Authorization: Bearer <key>" over REST).', details),
          );
          continue;
        }
        incoming.push({ index, raw, details, refusals: [] });
        types.push(type);
      }
      if (incoming.length > 1) refuseSharedTaskUUIDs(incoming);

      // Tasks that need no principal (authentication, ping) start at once, before anything is awaited: their
      // answers lead a WebSocket's frame, ahead of what a resumed session had waiting.
      const leading = new Map<TaskType, IncomingTask[]>();
      const working: IncomingTask[] = [];
      const workingTypes: TaskType[] = [];
      for (let position = 0; position < incoming.length; position++) {
        const type = types[position]!;
        if (type.needsPrincipal) {
          working.push(incoming[position]!);
          workingTypes.push(type);
        } else addTo(leading, type, incoming[position]!);
      }
      const started = [...leading].map(([type, group]) => type.run(group, context, sink));

      if (working.length > 0) {
        const admissions = context.admit ? await context.admit(working) : undefined;
        for (let position = 0; position < working.length; position++) {
          const task = working[position]!;
          const admission = admissions?.[position] ?? 'run';
          if (admission === 'skip') continue;
          if (admission !== 'run') refuse(sink, task.index, admission);
          else addTo(groups, workingTypes[position]!, task);
        }
        for (const [type, group] of groups) started.push(type.run(group, context, sink));
      }
      if (started.length === 1) await started[0];
      else await Promise.all(started);
    },
  };
}

function refuse(sink: TaskSink, index: number, error: ApiError): void {
  sink.errors(index, [error]);
  sink.end(index);
}

function addTo(groups: Map<TaskType, IncomingTask[]>, type: TaskType, task: IncomingTask): void {
  const group = groups.get(type);
  if (group) group.push(task);
  else groups.set(type, [task]);
}

function unsupportedTaskType(taskType: unknown, details: ErrorDetails, names: readonly string[]): ApiError {
  const what = taskType === undefined ? 'taskType is required' : `taskType ${JSON.stringify(taskType)?.slice(0, 80)} is not supported`;
  return createError('unsupportedTaskType', `${what}; this gateway runs ${names.map((name) => `"${name}"`).join(', ')}.`, {
    ...details,
    parameter: 'taskType',
    allowed: names,
  });
}

/** Built field by field: this runs for every task, and conditional spreads cost more than the rest of it. */
function detailsOf(raw: Record<string, unknown>, taskIndex: number): ErrorDetails {
  // In this order: it is the order of the fields in every error the client reads.
  const details: ErrorDetails = {};
  const { taskUUID, taskType } = raw;
  if (typeof taskUUID === 'string' && taskUUID.length <= 128) details.taskUUID = taskUUID;
  if (typeof taskType === 'string' && taskType.length <= 64) details.taskType = taskType;
  details.taskIndex = taskIndex;
  return details;
}

/** Every task sharing a taskUUID is refused: answers are matched by taskUUID, so none could be told apart. */
function refuseSharedTaskUUIDs(tasks: readonly IncomingTask[]): void {
  const byUUID = new Map<string, IncomingTask[]>();
  for (const task of tasks) {
    const taskUUID = task.details.taskUUID;
    if (taskUUID === undefined) continue;
    const key = taskUUID.toLowerCase();
    const same = byUUID.get(key);
    if (same) same.push(task);
    else byUUID.set(key, [task]);
  }
  for (const same of byUUID.values()) {
    if (same.length < 2) continue;
    const indexes = same.map((task) => task.index).join(', ');
    for (const task of same) {
      (task.refusals as ApiError[]).push(
        createError('duplicateTaskUUID', `taskUUID "${task.details.taskUUID}" is used by tasks ${indexes} of this request; give each task its own UUID.`, {
          ...task.details,
          parameter: 'taskUUID',
        }),
      );
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
