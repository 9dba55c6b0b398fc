import { createCancellation } from '../../contracts/cancellation.js';
import type { Dispatcher } from '../../contracts/dispatcher.js';
import type { JobQueueOptions } from '../../contracts/job-queue.js';
import type { QueuedTask } from '../../contracts/queued-task.js';
import { isFinal, LedgerUnavailableError, type LedgerEntry, type TaskLedger } from '../../contracts/task-ledger.js';
import type { Webhooks } from '../../contracts/webhooks.js';
import { createError } from '../../errors.js';
import { decodeWithBigints, encodeWithBigints } from '../../ledger/ledger-codec.js';
import { finalEntry } from './image-inference-task.js';

export interface AsyncTaskDependencies {
  readonly dispatcher: Dispatcher;
  readonly ledger: TaskLedger;
  readonly webhooks?: Webhooks;
  readonly concurrency: number;
  readonly maxAttempts: number;
  readonly logger: { warn(object: object, message: string): void };
}

/**
 * The consumer of async tasks, in every replica: each job is a validated task, run through the same
 * dispatcher as a sync one, its result written once to the ledger (the only place results go), then its
 * webhooks queued. A job run again — its replica died, or its ledger write failed — first reads the ledger:
 * a task already final is not generated again, only its webhooks are queued (again: they go out once).
 */
export function asyncTaskQueueOptions(dependencies: AsyncTaskDependencies): JobQueueOptions<QueuedTask> {
  const { ledger } = dependencies;
  return {
    name: 'clipgate-tasks',
    concurrency: dependencies.concurrency,
    attempts: dependencies.maxAttempts,
    backoffMs: 500,
    encode: encodeWithBigints,
    decode: (text) => decodeWithBigints(text) as QueuedTask,
    async process(job) {
      const { principal, validated, details } = job;
      const { task } = validated;
      let entry: LedgerEntry | undefined = await ledger.get(principal, task.taskUUID);
      if (!entry || !isFinal(entry)) {
        ledger.addEvent(principal, task.taskUUID, { type: 'started' });
        const outcome = await dependencies.dispatcher.dispatch(validated, {
          details,
          // Nobody waits on an async task's socket: it runs to its end (a replica's drain waits for it).
          cancellation: createCancellation(),
          onProgress: (step, steps) => ledger.addEvent(principal, task.taskUUID, { type: 'progress', step, steps }),
        });
        entry = await writeFinal(ledger, principal, finalEntry(task, outcome, entry?.fingerprint ?? '', true));
        ledger.addEvent(principal, task.taskUUID, { type: 'finished', state: entry.state === 'error' ? 'error' : 'success' });
      }
      if (task.webhookURL !== undefined && dependencies.webhooks) await dependencies.webhooks.announce(principal, entry, task.webhookURL);
    },
    async exhausted(job, reason) {
      const { principal, validated, details } = job;
      const error = createError('asyncTaskFailed', `The async task could not be run to its end: ${reason}. Send it again with a new taskUUID.`, details);
      const entry = await writeFinal(ledger, principal, { ...finalEntry(validated.task, { kind: 'failed', error }, '', true) });
      ledger.addEvent(principal, validated.task.taskUUID, { type: 'finished', state: 'error' });
      if (validated.task.webhookURL !== undefined && dependencies.webhooks) await dependencies.webhooks.announce(principal, entry, validated.task.webhookURL);
    },
  };
}

/**
 * The final write, tried a few times over a few seconds: after the GPU time is spent, a Redis blip must not
 * send the job round again (that would generate it twice).
 */
async function writeFinal(ledger: TaskLedger, principal: string, entry: Omit<LedgerEntry, 'updatedAt'>): Promise<LedgerEntry> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await ledger.finished(principal, entry);
    } catch (error) {
      if (!(error instanceof LedgerUnavailableError) || attempt >= 8) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
    }
  }
}
