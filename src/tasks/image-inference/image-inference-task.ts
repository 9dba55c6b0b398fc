import { createCancellation, type Cancellation } from '../../contracts/cancellation.js';
import type { Dispatcher, DispatchOutcome } from '../../contracts/dispatcher.js';
import type { ImageInferenceTask } from '../../contracts/image-inference-task.js';
import type { JobQueue } from '../../contracts/job-queue.js';
import type { ModelResolver } from '../../contracts/model-resolver.js';
import { principalTag } from '../../contracts/principal.js';
import type { QueuedTask } from '../../contracts/queued-task.js';
import { LedgerUnavailableError, type LedgerClaim, type LedgerEntry, type TaskLedger } from '../../contracts/task-ledger.js';
import type { ImageResult } from '../../contracts/task-result.js';
import type { ValidatedTask } from '../../contracts/validated-task.js';
import type { Webhooks } from '../../contracts/webhooks.js';
import { createError, type ApiError, type ErrorDetails } from '../../errors.js';
import type { TaskSink, TaskType } from '../task-type.js';
import { replayOf, stillProcessing, waitUntilFinal } from './ledger-replay.js';
import type { RuleLimits } from './model-rules.js';
import { taskFingerprint } from './task-fingerprint.js';
import { validateImageInferenceTasks } from './validate.js';

export interface ImageInferenceDependencies {
  readonly resolver: ModelResolver;
  readonly dispatcher: Dispatcher;
  readonly limits: RuleLimits;
  /** Cold AIRs one request may send to the registry (REGISTRY_LOOKUPS_PER_REQUEST). */
  readonly lookupsPerRequest?: number;
  /** Where each task's fate is kept: getResponse, resends, async delivery and webhooks read it. */
  readonly ledger: TaskLedger;
  /** Where async tasks go; absent: deliveryMethod "async" is refused. */
  readonly asyncTasks?: JobQueue<QueuedTask>;
  /** Absent: a webhookURL is refused. */
  readonly webhooks?: Webhooks;
  /** How long a sync request waits for its task (SYNC_WAIT_LIMIT_SECONDS); absent: as long as it takes. */
  readonly syncWaitLimitMs?: number;
  /**
   * How long after its last write a sync task's `processing` record counts as abandoned (its replica died:
   * the dispatcher ends every sync task well within this), so that a resend runs it instead of waiting forever.
   */
  readonly syncAbandonedAfterMs?: number;
  readonly logger?: { warn(object: object, message: string): void };
}

/**
 * `imageInference`: every task of the request validated together (one resolution round trip), then each
 * valid one claimed on the ledger (a taskUUID sent again is answered from its record, never generated again)
 * and either dispatched to a GPU worker now (sync: each image reported as it comes back) or put on the job
 * queue and acknowledged (async).
 */
export function createImageInferenceTaskType(dependencies: ImageInferenceDependencies): TaskType {
  const { ledger } = dependencies;
  return {
    taskType: 'imageInference',
    needsPrincipal: true,
    async run(tasks, context, sink) {
      const lookups = { ...(context.principal && { principal: context.principal.id }), ...(dependencies.lookupsPerRequest !== undefined && { sourceLookups: dependencies.lookupsPerRequest }) };
      const verdicts = await validateImageInferenceTasks(tasks, dependencies, { lookups });
      const principal = context.principal?.id ?? '';
      const rawOf = new Map(tasks.map((task) => [task.index, task.raw]));
      const running: Promise<void>[] = [];
      // A refused task is recorded too (getResponse gives its errors), before it ends.
      const refuse = (index: number, taskUUID: string | undefined, errors: readonly ApiError[]) => {
        sink.errors(index, errors);
        if (context.principal && taskUUID && UUID.test(taskUUID)) running.push(recordQuietly(ledger.finished(principal, { taskUUID, taskType: 'imageInference', state: 'error', results: [], errors })).then(() => sink.end(index)));
        else sink.end(index);
      };
      let inlineLeft = context.inlineMegapixels;
      for (const verdict of verdicts) {
        if (verdict.warnings.length > 0) sink.warnings(verdict.index, verdict.warnings);
        if (!verdict.valid) {
          refuse(verdict.index, verdict.details.taskUUID, verdict.errors);
          continue;
        }
        const task = verdict.valid.task;
        // One answer carries every inline image of its request: refused before any GPU time, not after.
        if (inlineLeft !== undefined && task.deliveryMethod === 'sync' && task.outputType !== 'URL') {
          const megapixels = inlineMegapixelsOf(task);
          if (megapixels > inlineLeft) {
            refuse(verdict.index, task.taskUUID, [inlineOutputTooLarge(megapixels, context.inlineMegapixels ?? 0, verdict.details)]);
            continue;
          }
          inlineLeft -= megapixels;
        }
        const run = { principal, validated: verdict.valid, details: verdict.details, fingerprint: taskFingerprint(rawOf.get(verdict.index) ?? {}) };
        running.push(runTask(run, dependencies, context.cancellation, sink).catch((error: unknown) => {
          // Nothing here should throw; if it does, the task still ends, with an error rather than silence.
          dependencies.logger?.warn({ err: error, taskUUID: task.taskUUID }, 'image inference task failed unexpectedly');
          sink.errors(verdict.index, [createError('internalError', 'The task could not be completed; retry it.', verdict.details)]);
          sink.end(verdict.index);
        }));
      }
      if (running.length === 1) await running[0];
      else if (running.length > 1) await Promise.all(running);
    },
  };
}

interface TaskRun {
  readonly principal: string;
  readonly validated: ValidatedTask;
  readonly details: ErrorDetails;
  readonly fingerprint: string;
}

async function runTask(run: TaskRun, dependencies: ImageInferenceDependencies, cancellation: Cancellation, sink: TaskSink, resumed = false): Promise<void> {
  const { task, index } = run.validated;
  const fail = (error: ApiError) => {
    sink.errors(index, [error]);
    sink.end(index);
  };
  if (task.webhookURL !== undefined) {
    const refusal = dependencies.webhooks
      ? await dependencies.webhooks.refusal(task.webhookURL, run.details)
      : createError('webhooksNotConfigured', 'This gateway has no WEBHOOK_SIGNING_SECRET, so it calls no webhook: a receiver could not verify what it sends. Leave webhookURL out and poll getResponse, or ask the operator to set one.', { ...run.details, parameter: 'webhookURL' });
    if (refusal) return fail(refusal);
  }
  const async = task.deliveryMethod === 'async';
  const queue = dependencies.asyncTasks;
  if (async && !queue) {
    return fail(createError('unsupportedFeature', 'This gateway runs no job queue, so it takes no deliveryMethod "async" tasks; send "sync".', { ...run.details, parameter: 'deliveryMethod', allowed: ['sync'] }));
  }
  let claim: LedgerClaim | undefined;
  try {
    const abandonedAfter = dependencies.syncAbandonedAfterMs;
    const claiming = dependencies.ledger.claim(run.principal, {
      taskUUID: task.taskUUID,
      taskType: 'imageInference',
      fingerprint: run.fingerprint,
      deliveryMethod: task.deliveryMethod,
      ...(abandonedAfter !== undefined && { abandonedBefore: Date.now() - abandonedAfter }),
    });
    claim = claiming instanceof Promise ? await claiming : claiming;
  } catch (error) {
    if (!(error instanceof LedgerUnavailableError)) throw error;
    // An async task without its record could never be fetched: refused. A sync one still runs (its answer
    // is its own), only without protection against a resend.
    if (async) return fail(createError('taskLedgerUnavailable', 'The task ledger is not answering, so this async task cannot be recorded; nothing was accepted. Send it again in a moment.', { ...run.details, retryAfter: 1 }));
    dependencies.logger?.warn({ err: error, taskUUID: task.taskUUID }, 'task ledger claim failed; running the sync task without it');
  }
  if (claim?.kind === 'taken') {
    const entry = claim.entry;
    if (entry.fingerprint !== undefined && entry.fingerprint !== run.fingerprint) {
      return fail(createError('taskUUIDConflict', `Task ${task.taskUUID} was sent before with this key with another body; a taskUUID names one task for ${dependencies.ledger.ttlSeconds} s (TASK_LEDGER_TTL_SECONDS). Send this task with a new taskUUID.`, { ...run.details, parameter: 'taskUUID' }));
    }
    // A resend of an async task still processing is queued again (the job id makes that a no-op when its job
    // exists): had its replica died between the claim and the add, the task would otherwise never run.
    if (queue && async) return entry.state === 'processing' ? enqueue(run, queue, dependencies, sink, false) : acknowledge(task, index, sink);
    const answered = await answerFromLedger(entry, run, dependencies, cancellation, sink);
    // The record it waited on was abandoned meanwhile: claimed again (once), the task runs here.
    if (answered === 'abandoned' && !resumed) return runTask(run, dependencies, cancellation, sink, true);
    if (answered === 'abandoned') return fail(stillProcessing(task.taskUUID, dependencies.syncAbandonedAfterMs ?? 0, run.details));
    return;
  }
  if (queue && async) return enqueue(run, queue, dependencies, sink, true);
  return runNow(run, dependencies, cancellation, sink, claim !== undefined);
}

function acknowledge(task: ImageInferenceTask, index: number, sink: TaskSink): void {
  sink.result(index, { taskType: 'imageInference', taskUUID: task.taskUUID });
  sink.end(index);
}

/** `claimed`: this request made the record, and releases it if the queue refuses (a resend leaves it to its first job). */
async function enqueue(run: TaskRun, queue: JobQueue<QueuedTask>, dependencies: ImageInferenceDependencies, sink: TaskSink, claimed: boolean): Promise<void> {
  const { task, index } = run.validated;
  try {
    // Within a key the taskUUID names the job: an add that repeats one (a recovered replica) adds nothing.
    const { waiting } = await queue.add({ principal: run.principal, validated: run.validated, details: run.details }, jobIdOf(run.principal, task.taskUUID));
    dependencies.ledger.addEvent(run.principal, task.taskUUID, { type: 'queued', position: waiting });
  } catch (error) {
    dependencies.logger?.warn({ err: error, taskUUID: task.taskUUID }, 'async task could not be queued');
    const refusal = createError('taskQueueUnavailable', 'The job queue is not answering, so this async task was not accepted; send it again in a moment.', { ...run.details, retryAfter: 1 });
    // Its claim is released as an error record, so the same taskUUID may be sent again.
    if (claimed) await recordQuietly(dependencies.ledger.finished(run.principal, { taskUUID: task.taskUUID, taskType: 'imageInference', state: 'error', results: [], errors: [refusal], fingerprint: run.fingerprint, deliveryMethod: 'async' }));
    sink.errors(index, [refusal]);
    sink.end(index);
    return;
  }
  acknowledge(task, index, sink);
}

/** A sync task: dispatched now, answered in its request — or, past SYNC_WAIT_LIMIT_SECONDS, left to finish on its own. */
async function runNow(run: TaskRun, dependencies: ImageInferenceDependencies, cancellation: Cancellation, sink: TaskSink, claimed: boolean): Promise<void> {
  const { task, index } = run.validated;
  const { ledger } = dependencies;
  const limitMs = dependencies.syncWaitLimitMs;
  // The client's leaving cancels the job only while the client waits for it: past the limit the job is detached.
  let jobCancellation: Cancellation = cancellation;
  let detach: (() => void) | undefined;
  if (limitMs !== undefined) {
    const own = createCancellation();
    detach = cancellation.onCancel((reason) => own.cancel(reason));
    jobCancellation = own;
  }
  const finished = dependencies.dispatcher.dispatch(run.validated, { details: run.details, cancellation: jobCancellation }).then(async (outcome) => {
    const entry = claimed ? await recordQuietly(ledger.finished(run.principal, finalEntry(task, outcome, run.fingerprint, false))) : undefined;
    if (entry && task.webhookURL !== undefined) await announceQuietly(dependencies, run.principal, entry, task.webhookURL);
    return outcome;
  });
  let timer: NodeJS.Timeout | undefined;
  const outcome = limitMs === undefined ? await finished : await Promise.race([finished, new Promise<'waiting'>((resolve) => (timer = setTimeout(resolve, limitMs, 'waiting')))]);
  clearTimeout(timer);
  detach?.();
  if (outcome === 'waiting') {
    sink.errors(index, [stillProcessing(task.taskUUID, limitMs ?? 0, run.details)]);
  } else if (outcome.kind === 'failed') {
    sink.errors(index, [outcome.error]);
  } else {
    for (const image of outcome.images) sink.result(index, image);
  }
  sink.end(index);
}

/**
 * A sync task sent again: its record's answer, after waiting for it to finish if it still runs — or
 * `abandoned` (nothing answered yet) when a sync record stopped changing for longer than any sync task runs.
 */
async function answerFromLedger(entry: LedgerEntry, run: TaskRun, dependencies: ImageInferenceDependencies, cancellation: Cancellation, sink: TaskSink): Promise<'answered' | 'abandoned'> {
  const { task, index } = run.validated;
  let final: LedgerEntry | 'gone' | 'waiting' = entry;
  const limitMs = dependencies.syncWaitLimitMs ?? 24 * 3600 * 1000;
  const abandonedAt = entry.deliveryMethod === 'sync' && dependencies.syncAbandonedAfterMs !== undefined ? entry.updatedAt + dependencies.syncAbandonedAfterMs : Infinity;
  if (entry.state === 'processing') {
    try {
      final = await waitUntilFinal(dependencies.ledger, run.principal, task.taskUUID, Math.min(Date.now() + limitMs, abandonedAt + 1), cancellation);
    } catch (error) {
      if (!(error instanceof LedgerUnavailableError)) throw error;
      final = 'waiting';
    }
    if (final === 'waiting' && Date.now() > abandonedAt && !cancellation.cancelled) return 'abandoned';
  }
  if (final === 'waiting' || final === 'gone') {
    sink.errors(index, [final === 'waiting' ? stillProcessing(task.taskUUID, limitMs, run.details) : createError('asyncTaskFailed', `Task ${task.taskUUID} was running, and its record expired before it finished; send it again with a new taskUUID.`, run.details)]);
    sink.end(index);
    return 'answered';
  }
  const replay = replayOf(final, run.details);
  if (replay.kind === 'error') {
    sink.errors(index, [replay.error]);
  } else {
    for (const result of replay.results) sink.result(index, result);
    if (replay.errors.length > 0) sink.errors(index, replay.errors);
  }
  sink.end(index);
  return 'answered';
}

/** The final record of a dispatched task. Sync results are kept without inline bytes (their answer carried them). */
export function finalEntry(task: ImageInferenceTask, outcome: DispatchOutcome, fingerprint: string, keepInline: boolean): Omit<LedgerEntry, 'updatedAt'> {
  const failed = outcome.kind === 'failed';
  return {
    taskUUID: task.taskUUID,
    taskType: 'imageInference',
    state: failed ? 'error' : 'success',
    results: failed ? [] : keepInline ? outcome.images : outcome.images.map(withoutInlineData),
    errors: failed ? [outcome.error] : [],
    fingerprint: fingerprint === '' ? undefined : fingerprint,
    deliveryMethod: task.deliveryMethod,
    inlineKept: keepInline,
  };
}

/** The queue's job id for a task: unique per key and taskUUID, without the key itself (job ids are visible in Redis). */
export function jobIdOf(principal: string, taskUUID: string): string {
  return `${principalTag(principal)}-${taskUUID}`;
}

/** A ledger write whose failure must not fail the answer it follows: logged by the ledger, dropped here. */
async function recordQuietly(write: Promise<LedgerEntry>): Promise<LedgerEntry | undefined> {
  try {
    return await write;
  } catch {
    return undefined;
  }
}

async function announceQuietly(dependencies: ImageInferenceDependencies, principal: string, entry: LedgerEntry, webhookURL: string): Promise<void> {
  try {
    await dependencies.webhooks?.announce(principal, entry, webhookURL);
  } catch (error) {
    dependencies.logger?.warn({ err: error, taskUUID: entry.taskUUID }, 'webhook deliveries could not be queued');
  }
}

/**
 * What the ledger keeps of a result delivered in its own answer: everything but inline image bytes, which
 * that answer carried (a day of base64 images per replica would be its heap, or Redis's memory); an image
 * by URL is kept whole, since its URL is all there is.
 */
function withoutInlineData(result: ImageResult): ImageResult {
  if (result.imageBase64Data === undefined && result.imageDataURI === undefined) return result;
  const { imageBase64Data: _base64, imageDataURI: _dataURI, ...kept } = result;
  return kept;
}

/** Only a real taskUUID is kept: the ledger never stores a key a client made up at any length. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function inlineMegapixelsOf(task: ImageInferenceTask): number {
  return (task.numberResults * task.width * task.height) / 1e6;
}

function inlineOutputTooLarge(megapixels: number, budget: number, details: ErrorDetails): ApiError {
  return createError(
    'inlineOutputTooLarge',
    `This task's ${megapixels.toFixed(1)} megapixels of inline images would take the answer past the ${budget} megapixels of inline images one answer carries (INLINE_OUTPUT_MAX_MEGAPIXELS), with the tasks before it. Ask for outputType "URL", or send fewer tasks per request.`,
    { ...details, parameter: 'outputType', allowed: ['URL'] },
  );
}
