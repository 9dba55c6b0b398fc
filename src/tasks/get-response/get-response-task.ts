import { z } from 'zod';
import { LedgerUnavailableError, type LedgerEntry, type TaskLedger } from '../../contracts/task-ledger.js';
import { ledgerUnavailable, taskNotFound } from '../task-record-errors.js';
import { issuesToErrors } from '../structural-errors.js';
import type { TaskType } from '../task-type.js';

/**
 * `getResponse` (Runware's): `{taskType: "getResponse", taskUUID}` → what became of that task of the same
 * key, from the task ledger — each result with `status: "success"`, or one `{status: "processing"}` while it
 * runs, or its errors. A task the key never sent, or whose record expired, is `taskNotFound`: another key's
 * task is never found, so one key learns nothing of another's.
 */

export const getResponseTaskSchema = z
  .strictObject({ taskType: z.literal('getResponse'), taskUUID: z.uuid().meta({ description: 'The taskUUID of a task this key sent.' }) })
  .meta({ id: 'GetResponseTask' });

const knownKeys = Object.keys(getResponseTaskSchema.shape);

export function createGetResponseTaskType(ledger: TaskLedger): TaskType {
  return {
    taskType: 'getResponse',
    needsPrincipal: true,
    async run(tasks, context, sink) {
      await Promise.all(
        tasks.map(async (task) => {
          const parsed = getResponseTaskSchema.safeParse(task.raw);
          if (!parsed.success) {
            sink.errors(task.index, issuesToErrors(parsed.error.issues, { input: task.raw, knownKeys: () => knownKeys, details: task.details }));
          } else {
            let entry: LedgerEntry | undefined;
            try {
              entry = context.principal && (await ledger.get(context.principal.id, parsed.data.taskUUID));
            } catch (error) {
              if (!(error instanceof LedgerUnavailableError)) throw error;
              sink.errors(task.index, [ledgerUnavailable(task.details)]);
              sink.end(task.index);
              return;
            }
            if (!entry) {
              sink.errors(task.index, [taskNotFound(parsed.data.taskUUID, ledger.ttlSeconds, task.details)]);
            } else if (entry.state === 'processing') {
              sink.result(task.index, { taskType: 'imageInference', taskUUID: entry.taskUUID, status: 'processing' });
            } else {
              for (const result of entry.results) sink.result(task.index, { ...result, status: 'success' });
              if (entry.errors.length > 0) sink.errors(task.index, entry.errors);
            }
          }
          sink.end(task.index);
        }),
      );
    },
  };
}
