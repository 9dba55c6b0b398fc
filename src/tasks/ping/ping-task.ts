import { z } from 'zod';
import { createError } from '../../errors.js';
import type { TaskType } from '../task-type.js';

/**
 * `ping`: `{taskType: "ping", ping: true}` → `{taskType: "ping", pong: true}`. Runware's clients send it to
 * keep a socket alive, some before their authentication is answered, so it needs no key.
 */
/** For the OpenAPI document. */
export const pingTaskSchema = z
  .object({ taskType: z.literal('ping'), ping: z.literal(true).optional(), taskUUID: z.string().optional() })
  .meta({ id: 'PingTask' });

export const pingTaskType: TaskType = {
  taskType: 'ping',
  needsPrincipal: false,
  async run(tasks, _context, sink) {
    for (const task of tasks) {
      const { ping } = task.raw;
      const taskUUID = task.details.taskUUID;
      if (ping !== undefined && ping !== true) {
        sink.errors(task.index, [createError('invalidParameter', 'ping must be true: {"taskType": "ping", "ping": true}.', { ...task.details, parameter: 'ping' })]);
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
