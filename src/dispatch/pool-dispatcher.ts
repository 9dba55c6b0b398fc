import { createError, type ApiError, type ErrorDetails } from '../errors.js';
import { embeddingFilePath } from '../contracts/embedding-file-path.js';
import type { ValidatedTask } from '../contracts/validated-task.js';
import { QueueFullError, QueueTimeoutError } from './admission-queue.js';
import { randomSeed } from './random-seed.js';
import type { DispatchContext, DispatchOutcome, Dispatcher } from '../contracts/dispatcher.js';
import type { AttemptSpan, DispatchSpan, DispatchTracer } from '../contracts/dispatch-tracing.js';
import { toImageResults, type OutputContext } from './image-output.js';
import { cancelJob, runJob, type JobOutcome } from './worker-client.js';
import { NoWorkerError, type WorkerPool } from './worker-pool.js';
import { batchKey } from './batch-key.js';
import type { JobImage, JobRequest, WorkerCapability } from './worker-protocol.js';
import { causeOf } from '../contracts/cancellation.js';
import { SEED_MAX } from '../contracts/seed.js';
import { acceptsEmbeddings } from '../contracts/families.js';
import { lossyOutputFormats } from '../contracts/image-inference-task.js';
import { OUTPUT_QUALITY } from '../contracts/task-limits.js';

/**
 * The dispatch stage: a validated task becomes one job on one worker at a time. A failure before any
 * result is retried on another worker (bounded, with jitter); a deadline, or a client that went away,
 * cancels the job on its worker. A task ends in exactly one outcome, so a retry can never give it two
 * results; an upstream failure is never reported as success.
 */

export interface PoolDispatcherOptions {
  readonly pool: WorkerPool;
  readonly output: OutputContext;
  readonly taskTimeoutMs: number;
  readonly firstByteTimeoutMs: number;
  /** After `accepted`, the longest a worker may go without an event before the job counts as hung. */
  readonly progressTimeoutMs: number;
  readonly queueWaitMs: number;
  readonly maxAttempts: number;
  readonly publicBaseUrl: string;
  readonly random: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** A span per task and per attempt when tracing is on; absent, nothing is traced. */
  readonly tracer?: DispatchTracer;
}

export function createPoolDispatcher(options: PoolDispatcherOptions): Dispatcher {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));

  const { tracer } = options;

  /** The task's span around its dispatch: `success` or the code of the error it ends with. */
  async function traced(activeTracer: DispatchTracer, validated: ValidatedTask, context: DispatchContext): Promise<DispatchOutcome> {
    const span = activeTracer.startDispatch({ taskType: validated.task.taskType, taskUUID: validated.task.taskUUID, model: validated.model.air });
    try {
      const outcome = await dispatchTask(validated, context, span);
      span.end(outcome.kind === 'images' ? 'success' : outcome.error.code, outcome.kind !== 'images');
      return outcome;
    } catch (error) {
      span.end('internalError', true);
      throw error;
    }
  }

  async function dispatchTask(validated: ValidatedTask, context: DispatchContext, span: DispatchSpan | undefined): Promise<DispatchOutcome> {
    const fileProblem = missingEmbeddingFile(validated, context.details) ?? missingLoraFile(validated, context.details);
    if (fileProblem) return { kind: 'failed', error: fileProblem };
    const job = jobFor(validated, options.publicBaseUrl);
    const placement = { model: job.model.air, batchKey: batchKey(job), required: requiredCapabilities(job) };
    const limits = { maxLineChars: resultLineBudget(job) };
    const taskUUID = job.jobId;
    const deadline = Date.now() + options.taskTimeoutMs;
    const tried = new Set<string>();
    let lastFailure = 'no attempt was made';
    let lastWasTimeout = false;

    for (let attempt = 1; attempt <= options.maxAttempts; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      let lease;
      try {
        // A free slot is handed over at once; only a task that must queue waits on a promise.
        const claimed = options.pool.acquire(placement, tried, context.cancellation, Math.min(options.queueWaitMs, remaining));
        lease = claimed instanceof Promise ? await claimed : claimed;
      } catch (error) {
        return { kind: 'failed', error: admissionError(error, job, context.details, options.pool) };
      }
      tried.add(lease.worker.id);

      // Each attempt has its own job id: a late cancel of an earlier attempt must not hit this one. (runJob
      // serialises the job before it returns, so the next attempt may rename it.)
      const attemptJobId = `${taskUUID}.${attempt}`;
      job.jobId = attemptJobId;
      const attemptSpan = span?.startAttempt({ workerUrl: lease.worker.url, jobId: attemptJobId, attempt });
      const outcome = await runJob(
        lease.worker.http,
        job,
        { firstByteMs: options.firstByteTimeoutMs, progressMs: options.progressTimeoutMs, totalMs: Math.max(1, deadline - Date.now()) },
        limits,
        context.cancellation,
        context.onProgress,
        attemptSpan?.headers,
      );
      const problem = outcome.kind === 'result' ? resultProblem(outcome.images, job) : undefined;
      if (attemptSpan) endAttemptSpan(attemptSpan, outcome, problem);
      switch (outcome.kind) {
        case 'result': {
          if (problem) {
            // A worker that answers something other than what was asked is broken; never pass it on.
            lease.release('failure');
            lastWasTimeout = false;
            lastFailure = `worker ${lease.worker.url}: ${problem}`;
            break;
          }
          lease.release('success');
          try {
            const images = toImageResults(validated.task, outcome.images, options.output);
            return { kind: 'images', images: Array.isArray(images) ? images : await images };
          } catch (error) {
            // The images exist but could not be stored: this task fails, retryably; the others do not.
            return { kind: 'failed', error: createError('internalError', `The images were generated but could not be stored (${error instanceof Error ? error.message : String(error)}); retry the task.`, context.details) };
          }
        }
        case 'rejected':
          // The worker is fine; the task is not.
          lease.release('neutral');
          return {
            kind: 'failed',
            error: createError('workerRejectedTask', `The worker refused the task: ${outcome.error.code}: ${outcome.error.message}`, context.details),
          };
        case 'cancelled':
          lease.release('neutral');
          void cancelJob(lease.worker.http, attemptJobId);
          return { kind: 'failed', error: cancelledError(context.cancellation.reason, context.details) };
        case 'timeout':
          lease.release('failure');
          void cancelJob(lease.worker.http, attemptJobId);
          lastWasTimeout = true;
          lastFailure =
            outcome.phase === 'firstByte'
              ? `worker ${lease.worker.url} did not accept the job within ${options.firstByteTimeoutMs} ms`
              : outcome.phase === 'progress'
                ? `worker ${lease.worker.url} accepted the job, then said nothing for ${options.progressTimeoutMs} ms`
                : `the job did not finish within ${options.taskTimeoutMs} ms`;
          // Total time is spent: nothing is left to retry with.
          if (outcome.phase === 'total') return { kind: 'failed', error: createError('timeoutWorker', `The task timed out: ${lastFailure}.`, context.details) };
          break;
        case 'failed':
          lease.release(outcome.blame === 'worker' ? 'failure' : 'neutral');
          if (outcome.recheck) void options.pool.recheck(lease.worker);
          // A worker that took the job and then broke may still be running it: stop it before retrying.
          if (outcome.accepted) void cancelJob(lease.worker.http, attemptJobId);
          lastWasTimeout = false;
          lastFailure = `worker ${lease.worker.url}: ${outcome.reason}`;
          break;
      }
      if (attempt < options.maxAttempts) await sleep(backoffMs(attempt, options.random));
    }

    const timedOut = lastWasTimeout || Date.now() >= deadline;
    return {
      kind: 'failed',
      error: timedOut
        ? createError('timeoutWorker', `The task timed out: ${lastFailure}.`, context.details)
        : createError('workerFailed', `The task failed on every attempt (${tried.size} worker(s)); last: ${lastFailure}. Nothing was produced; retry later.`, context.details),
    };
  }

  return {
    dispatch(validated, context) {
      return tracer ? traced(tracer, validated, context) : dispatchTask(validated, context, undefined);
    },
  };
}

/** An attempt's span ends with the job's outcome: its kind, and what went wrong when something did. */
function endAttemptSpan(span: AttemptSpan, outcome: JobOutcome, problem: string | undefined): void {
  switch (outcome.kind) {
    case 'result':
      return problem ? span.end('invalidResult', problem) : span.end('result');
    case 'rejected':
      return span.end('rejected', `${outcome.error.code}: ${outcome.error.message}`);
    case 'failed':
      return span.end('failed', outcome.reason);
    case 'timeout':
      return span.end('timeout', `${outcome.phase} deadline passed`);
    case 'cancelled':
      return span.end('cancelled');
  }
}

/**
 * The longest result line a job can need: each image as an uncompressed RGB PNG (the worst a PNG gets), in
 * base64, plus room for the JSON around it. A worker's line beyond that is refused as it arrives, so a
 * job's memory is bounded by what it asked for, not by what a worker sends.
 */
function resultLineBudget(job: JobRequest): number {
  const worstImageBytes = job.width * job.height * 3.1 + 4096;
  return Math.min(MAX_RESULT_LINE_CHARS, Math.ceil(job.numberResults * ((worstImageBytes * 4) / 3 + 1024)) + 64 * 1024);
}

/** Beyond any job clipgate takes (20 × 2048² PNG); far below V8's string limit. */
const MAX_RESULT_LINE_CHARS = 512 * 1024 * 1024;

function resultProblem(images: readonly JobImage[], job: JobRequest): string | undefined {
  if (images.length !== job.numberResults) return `it returned ${images.length} image(s) for numberResults ${job.numberResults}`;
  const wrong = images.find((image) => image.format !== job.outputFormat);
  if (wrong) return `it returned ${wrong.format} for outputFormat ${job.outputFormat}`;
  // Image i has seed + i (mod 2^64): a result with other seeds is not this job's.
  for (let index = 0; index < images.length; index++) {
    const seed = images[index]!.seed;
    const expected = index === 0 ? job.seed : ((BigInt(job.seed) + BigInt(index)) & SEED_MAX).toString();
    if (seed !== expected && BigInt(seed) !== BigInt(expected)) return `it returned seed ${seed} for image ${index}, not ${expected}`;
  }
  // An NSFW verdict the worker did not give must never be made up, nor one it was not asked for passed on.
  const unchecked = images.find((image) => (image.nsfw === undefined) === (job.checkNSFW === true));
  return unchecked ? (job.checkNSFW ? 'it returned an image without the NSFW verdict checkNSFW asks for' : 'it returned an NSFW verdict nobody asked for') : undefined;
}

/** What a worker must advertise to take this job: the job carries those fields only when the task needs them. */
function requiredCapabilities(job: JobRequest): readonly WorkerCapability[] {
  const mentions = job.embeddings.length > 0 && job.embeddings.some((embedding) => embedding.mentions !== undefined);
  if (job.outputQuality === undefined && job.checkNSFW === undefined && job.promptWeighting === undefined && !mentions && job.loras === undefined) return noCapabilities;
  const required: WorkerCapability[] = [];
  if (job.outputQuality !== undefined) required.push('outputQuality');
  if (job.checkNSFW) required.push('nsfwCheck');
  if (job.promptWeighting !== undefined) required.push('promptWeighting');
  if (mentions) required.push('embeddingMentions');
  if (job.loras !== undefined) required.push('loras');
  return required;
}

const noCapabilities: readonly WorkerCapability[] = [];

/** How the public API names what a capability is for, in a noAvailableWorker error. */
const capabilityUses: Record<WorkerCapability, { parameter: string; use: string }> = {
  outputQuality: { parameter: 'outputQuality', use: 'encode JPG or WEBP at an outputQuality other than 95' },
  nsfwCheck: { parameter: 'checkNSFW', use: 'check images for NSFW content (checkNSFW)' },
  promptWeighting: { parameter: 'promptWeighting', use: 'read prompt weighting syntax (promptWeighting)' },
  embeddingMentions: { parameter: 'embeddings', use: "place embeddings where the prompt names them (a trigger word or an <embedding:AIR> marker in the prompt)" },
  loras: { parameter: 'lora', use: 'apply LoRAs' },
};

/** 50–150 ms, doubling per attempt: enough to let a restarting worker's neighbours take over. */
function backoffMs(attempt: number, random: () => number): number {
  return Math.round(50 * 2 ** (attempt - 1) * (1 + random()));
}

function admissionError(error: unknown, job: JobRequest, details: ErrorDetails, pool: WorkerPool): ApiError {
  const retryAfter = pool.retryAfterSeconds();
  if (error instanceof QueueFullError) {
    return createError('queueFull', `Every worker for model "${job.model.air}" is busy and the queue is full; retry in ${retryAfter} s.`, {
      ...details,
      retryAfter,
      queuePosition: error.position,
    });
  }
  if (error instanceof QueueTimeoutError) {
    return createError('queueTimeout', `The task waited ${Math.round(error.waitedMs / 1000)} s in the queue (position ${error.position}) and no worker for model "${job.model.air}" freed up; retry in ${retryAfter} s.`, {
      ...details,
      retryAfter,
      queuePosition: error.position,
    });
  }
  if (error instanceof NoWorkerError && error.missingCapability) {
    const { parameter, use } = capabilityUses[error.missingCapability];
    return createError(
      'noAvailableWorker',
      `No healthy GPU worker serving model "${job.model.air}" can ${use} right now; none advertises it. Retry later, or send the task without ${parameter}.`,
      { ...details, parameter, retryAfter },
    );
  }
  if (error instanceof NoWorkerError) {
    return createError('noAvailableWorker', `No healthy GPU worker serves model "${job.model.air}" (family "${job.model.family}") right now; retry later.`, {
      ...details,
      retryAfter,
    });
  }
  // Cancelled while queued (the client went away, the replica drains): never something that looks like success.
  return cancelledError(error instanceof Error ? error : undefined, details);
}

/** The error of a task whose work was cancelled, by why it was. */
function cancelledError(reason: Error | undefined, details: ErrorDetails): ApiError {
  switch (causeOf(reason)) {
    case 'shuttingDown':
      return createError('shuttingDown', `The task was stopped because ${reason?.message ?? 'this gateway replica is shutting down'}; it produced nothing. Retry it.`, { ...details, retryAfter: 1 });
    case 'sessionExpired':
      return createError('timeoutWorker', 'The task was cancelled because its WebSocket session was not resumed in time.', details);
    case 'clientGone':
      return createError('timeoutWorker', 'The task was cancelled because the client disconnected.', details);
  }
}

/** A LoRA known only by a catalogue label has no file a worker could load: refused, never dropped. */
function missingLoraFile(validated: ValidatedTask, details: ErrorDetails): ApiError | undefined {
  const index = validated.loras.findIndex((entry) => entry.weight !== 0 && !entry.record.loraFile);
  if (index < 0) return undefined;
  return createError(
    'loraFileMissing',
    `LoRA "${validated.loras[index]?.air.canonical}" is known only by its catalogue label: no file exists to send to a worker (is the registry switched off?).`,
    { ...details, parameter: `lora[${index}].model` },
  );
}

function missingEmbeddingFile(validated: ValidatedTask, details: ErrorDetails): ApiError | undefined {
  const index = validated.embeddings.findIndex((entry) => entry.weight !== 0 && !entry.record.file);
  if (index < 0) return undefined;
  return createError(
    'embeddingFileMissing',
    `"${validated.embeddings[index]?.air.canonical}" is known only by its catalogue label: no inspected file exists to send to a worker (is the registry switched off?).`,
    { ...details, parameter: `embeddings[${index}].model` },
  );
}

/** The worker's view of a task: resolved files instead of AIRs, the weight's sign as a placement. */
export function jobFor(validated: ValidatedTask, publicBaseUrl: string): JobRequest {
  const { task } = validated;
  const job: JobRequest = {
    jobId: task.taskUUID,
    model: { air: validated.model.air, family: validated.model.family },
    positivePrompt: task.positivePrompt,
    negativePrompt: task.negativePrompt ?? '',
    width: task.width,
    height: task.height,
    steps: task.steps,
    cfgScale: task.CFGScale,
    // A task without a seed gets a random one, reported back exactly with each image.
    seed: (task.seed ?? randomSeed()).toString(),
    scheduler: task.scheduler,
    clipSkip: task.clipSkip,
    numberResults: task.numberResults,
    outputFormat: task.outputFormat,
    embeddings: validated.embeddings.flatMap(({ air, weight, record, mentions }) =>
      // Weight 0 has no effect (the client was warned); sending it would only cost the worker a lookup.
      record.file && weight !== 0 && acceptsEmbeddings(record.family)
        ? [
            {
              air: air.canonical,
              sha256: record.file.canonicalSha256,
              url: `${publicBaseUrl}${embeddingFilePath(record.file.canonicalSha256)}`,
              weight: Math.abs(weight),
              placement: weight > 0 ? ('positive' as const) : ('negative' as const),
              vectors: record.file.vectors,
              family: record.family,
              ...(mentions && { mentions: [...mentions] }),
            },
          ]
        : [],
    ),
  };
  // Capability fields only where the task needs them (requiredCapabilities); a worker takes 95 by default.
  if (task.outputQuality !== OUTPUT_QUALITY.default && lossyOutputFormats.has(task.outputFormat)) job.outputQuality = task.outputQuality;
  if (task.checkNSFW) job.checkNSFW = true;
  if (task.promptWeighting) job.promptWeighting = task.promptWeighting;
  // Weight 0 does nothing (the client was warned); a task left with none needs no LoRA-capable worker.
  const loras = validated.loras.length === 0 ? [] : validated.loras.flatMap(({ air, weight, record }) =>
    record.loraFile && weight !== 0
      ? [{ air: air.canonical, sha256: record.loraFile.sha256, url: record.loraFile.downloadUrl, sizeBytes: Math.max(1, record.loraFile.sizeBytes), weight, family: record.family }]
      : [],
  );
  if (loras.length > 0) job.loras = loras;
  return job;
}
