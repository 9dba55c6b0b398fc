import { z } from 'zod';
import { issuesToErrors } from '../structural-errors.js';
import type { TaskType } from '../task-type.js';

/**
 * `ping`: `{taskType: "ping", ping: true}` → `{taskType: "ping", pong: true}`. Runware's clients send it to
 * keep a socket alive, some before their authentication is answered, so it needs no key.
 */
/** For the OpenAPI document. */
export const pingTaskSchema = z
  .strictObject({ taskType: z.literal('ping'), ping: z.literal(true).optional(), taskUUID: z.string().max(128).optional() })
  .meta({ id: 'PingTask' });

const knownKeys = Object.keys(pingTaskSchema.shape);

export const pingTaskType: TaskType = {
  taskType: 'ping',
  needsPrincipal: false,
  async run(tasks, _context, sink) {
    for (const task of tasks) {
      const parsed = pingTaskSchema.safeParse(task.raw);
      const taskUUID = task.details.taskUUID;
      if (!parsed.success) {
        sink.errors(task.index, issuesToErrors(parsed.error.issues, { input: task.raw, knownKeys: () => knownKeys, details: task.details }));
      } else if (task.refusals.length > 0) {
        sink.errors(task.index, task.refusals);
      } else {
        sink.result(task.index, taskUUID === undefined ? pong : { taskType: 'ping', pong: true, taskUUID });
      }
      sink.end(task.index);
    }
  },
};

const pong = Object.freeze({ taskType: 'ping' as const, pong: true as const });
