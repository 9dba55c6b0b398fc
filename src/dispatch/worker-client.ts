import type { Dispatcher } from 'undici';
import { z } from 'zod';
import type { Cancellation } from '../contracts/cancellation.js';
import { SEED_MAX } from '../contracts/seed.js';
import { jobEventSchema, workerErrorBodySchema, type JobImage, type JobRequest, type WorkerError } from './worker-protocol.js';

/**
 * One job on one worker (worker protocol v1): POST /v1/jobs, then read the NDJSON event stream. Two
 * deadlines: the first byte (response headers and the `accepted` line) and the total; both abort the
 * request. What happened is classified for the dispatcher: a result, the task's own error (not worth
 * retrying elsewhere), a failure worth retrying on another worker, a timeout, or a cancellation.
 */

export type JobOutcome =
  | { readonly kind: 'result'; readonly images: readonly JobImage[] }
  /** The worker refused the job itself (malformed, unknown model, embedding shape): retrying elsewhere won't help. */
  | { readonly kind: 'rejected'; readonly error: WorkerError }
  /**
   * Busy, crashed, 5xx, reset, broken stream: another worker may do it. `accepted` says whether the worker
   * took it; `blame` whether it counts against the worker's breaker (a busy or draining worker is healthy);
   * `recheck` that the worker's last health report is contradicted (it no longer serves the model).
   */
  | { readonly kind: 'failed'; readonly reason: string; readonly accepted: boolean; readonly blame: 'worker' | 'none'; readonly recheck?: boolean }
  /** firstByte: nothing accepted in time; progress: accepted, then silent too long; total: the task's deadline. */
  | { readonly kind: 'timeout'; readonly phase: 'firstByte' | 'progress' | 'total' }
  | { readonly kind: 'cancelled' };

export interface JobDeadlines {
  readonly firstByteMs: number;
  /** After `accepted`, the longest a worker may stay silent (protocol v1: workers send progress or heartbeats). */
  readonly progressMs: number;
  readonly totalMs: number;
}

export interface JobLimits {
  /** The longest NDJSON line taken from this job's stream (its result, which carries the images, is the longest). */
  readonly maxLineChars: number;
}
/** An error body longer than this is cut: it only goes into a message. */
const MAX_REFUSAL_BYTES = 64 * 1024;

/**
 * Runs the job through undici's dispatch API with a handler rather than `request()` and a body stream: it
 * is the hot path of every task, and the handler avoids a stream, its promises and a second abort
 * controller per job. Two timers, both armed at the start: the first byte (until `accepted`) and the total.
 */
export function runJob(
  http: Dispatcher,
  job: JobRequest,
  deadlines: JobDeadlines,
  limits: JobLimits,
  cancellation: Cancellation,
  onProgress?: (step: number, steps: number) => void,
  /** Trace context (`traceparent`, `tracestate`) for the worker's logs; only when tracing is on. */
  traceHeaders?: Readonly<Record<string, string>>,
): Promise<JobOutcome> {
  if (cancellation.cancelled) return Promise.resolve({ kind: 'cancelled' });
  return new Promise<JobOutcome>((resolve) => {
    const stream = new JobStream(resolve, job.jobId, deadlines, limits, cancellation, onProgress);
    http.dispatch(
      {
        path: '/v1/jobs',
        method: 'POST',
        headers: traceHeaders ? { ...jobRequestHeaders, ...traceHeaders } : jobRequestHeaders,
        body: JSON.stringify(job),
        // Our own timers govern; undici's idle timers would only race them.
        headersTimeout: 0,
        bodyTimeout: 0,
      },
      stream,
    );
  });
}

const jobRequestHeaders = { 'content-type': 'application/json', accept: 'application/x-ndjson' };

/**
 * One job's response, as an undici dispatch handler: one object per job, its methods on the prototype, where
 * closures would cost a dozen allocations per task. It resolves exactly once, whichever comes first of the
 * final event, a deadline, a cancellation, or the connection's end.
 */
class JobStream implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private settled = false;
  private accepted = false;
  private final: JobOutcome | undefined;
  private status = 0;
  private pending = '';
  private refusal: Buffer[] | undefined;
  private refusalBytes = 0;
  /**
   * Both armed at the start with the durations every job shares: Node keeps one timer list per duration, so
   * a total deadline armed at `accepted` with what remains of it would make (and drop) a list per job.
   */
  private readonly firstByteTimer: NodeJS.Timeout | undefined;
  /** Armed at `accepted` (one duration for all jobs, so one timer list), refreshed by every event after it. */
  private silenceTimer: NodeJS.Timeout | undefined;
  private readonly totalTimer: NodeJS.Timeout;
  private readonly stopListening: () => void;

  constructor(
    private readonly resolve: (outcome: JobOutcome) => void,
    /** The job id of this attempt: every event must carry it. */
    private readonly jobId: string,
    private readonly deadlines: JobDeadlines,
    private readonly limits: JobLimits,
    cancellation: Cancellation,
    private readonly onProgress: ((step: number, steps: number) => void) | undefined,
  ) {
    this.firstByteTimer = deadlines.firstByteMs < deadlines.totalMs ? setTimeout(this.onDeadline, deadlines.firstByteMs, this) : undefined;
    this.totalTimer = setTimeout(this.onDeadline, deadlines.totalMs, this);
    this.stopListening = cancellation.onCancel((reason) => this.stop({ kind: 'cancelled' }, reason));
  }

  /** A timer callback that takes its job as an argument rather than closing over it; a job not yet accepted missed its first byte. */
  private onDeadline(this: void, stream: JobStream): void {
    const phase = stream.accepted ? 'total' : 'firstByte';
    stream.stop({ kind: 'timeout', phase }, new Error(`${phase} deadline passed`));
  }

  private onSilence(this: void, stream: JobStream): void {
    stream.stop({ kind: 'timeout', phase: 'progress' }, new Error('the worker went silent'));
  }

  private settle(outcome: JobOutcome): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.firstByteTimer);
    clearTimeout(this.silenceTimer);
    clearTimeout(this.totalTimer);
    this.stopListening();
    this.resolve(outcome);
  }

  private stop(outcome: JobOutcome, reason: Error): void {
    this.settle(outcome);
    this.controller?.abort(reason);
  }

  private onLine(line: string): void {
    if (line === '' || this.settled) return;
    // The final event is a stream's last line: a second result, or anything else after it, breaks the stream.
    if (this.final) return this.violation('the worker sent an event after the final one');
    const event = parseEvent(line);
    if (!event) return this.violation('the worker sent an event that is not protocol v1');
    // An event of another job (a worker mixing up its streams) is never taken for this one's.
    if (event.jobId !== this.jobId) return this.violation(`the worker sent an event of job "${event.jobId.slice(0, 140)}" in the stream of job "${this.jobId}"`);
    // No refresh of the silence timer here: the chunk that carried this line did it.
    switch (event.event) {
      case 'accepted':
        if (this.accepted) return;
        this.accepted = true;
        clearTimeout(this.firstByteTimer);
        this.silenceTimer = setTimeout(this.onSilence, this.deadlines.progressMs, this);
        return;
      case 'progress':
        this.onProgress?.(event.step, event.steps);
        return;
      case 'result':
        this.final = { kind: 'result', images: event.images };
        return;
      case 'error':
        this.final = errorEventOutcome(event.error, this.accepted);
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) controller.abort(new Error('no longer wanted'));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    if (this.status !== 200) {
      this.refusal ??= [];
      if (this.refusalBytes < MAX_REFUSAL_BYTES) this.refusal.push(chunk);
      this.refusalBytes += chunk.length;
      return;
    }
    // A chunk of a long line is a sign of life too.
    this.silenceTimer?.refresh();
    // Lines are split only where the chunk has a newline; a long result line arrives in many chunks.
    const text = chunk.toString(); // UTF-8; without an argument, Buffer skips its encoding lookup
    if (text.indexOf('\n') < 0) {
      this.pending += text;
      if (this.pending.length > this.limits.maxLineChars) this.oversized();
      return;
    }
    const lines = (this.pending + text).split('\n');
    this.pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line.length > this.limits.maxLineChars) return this.oversized();
      this.onLine(line.trim());
    }
    if (this.pending.length > this.limits.maxLineChars) this.oversized();
  }

  /** A stream that broke protocol v1: nothing more of it is read or trusted, and the worker is at fault. */
  private violation(reason: string): void {
    this.stop({ kind: 'failed', reason, accepted: this.accepted, blame: 'worker' }, new Error('protocol violation'));
  }

  /** A line longer than the job can need: memory per job stays bounded, and the worker is at fault. */
  private oversized(): void {
    this.pending = '';
    this.stop(
      { kind: 'failed', reason: `the worker sent an event longer than ${this.limits.maxLineChars} characters, more than this job's images can take`, accepted: this.accepted, blame: 'worker' },
      new Error('oversized event'),
    );
  }

  onResponseEnd(): void {
    if (this.status !== 200) {
      this.settle(classifyRefusal(this.status, Buffer.concat(this.refusal ?? []).toString('utf8'), this.accepted));
      return;
    }
    this.onLine(this.pending.trim());
    // The stream is read to its end after the final event, so the connection goes back to the pool.
    this.settle(this.final ?? { kind: 'failed', reason: 'the worker ended the stream without a result', accepted: this.accepted, blame: 'worker' });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.settle(
      this.final ?? { kind: 'failed', reason: `${this.accepted ? "the worker's stream broke" : 'could not reach the worker'} (${describe(error)})`, accepted: this.accepted, blame: 'worker' },
    );
  }
}

/** Refusals that say the worker is healthy but cannot take this job now: another worker may. */
const neutralRefusals: ReadonlySet<number> = new Set([409, 429, 503]);

function classifyRefusal(status: number, body: string, accepted: boolean): JobOutcome {
  const refusal = parseRefusal(status, body);
  const reason = `the worker answered ${status} ${refusal.code}: ${refusal.message}`;
  // A worker that restarted with other models says so before our next health poll: place the job elsewhere.
  if (refusal.code === 'unknownModel') return { kind: 'failed', reason, accepted, blame: 'none', recheck: true };
  if (neutralRefusals.has(status)) return { kind: 'failed', reason, accepted, blame: 'none' };
  if (status >= 400 && status < 500 && !refusal.retryable) return { kind: 'rejected', error: refusal };
  return { kind: 'failed', reason, accepted, blame: 'worker' };
}

/** Error events the worker ends a stream with; codes that say nothing against the worker are neutral. */
function errorEventOutcome(error: WorkerError, accepted: boolean): JobOutcome {
  const reason = `${error.code}: ${error.message}`;
  // `cancelled` we did not ask for (a stale cancel of an earlier attempt, a draining worker): retry elsewhere.
  if (error.code === 'cancelled' || error.code === 'notReady' || error.code === 'embeddingUnavailable') return { kind: 'failed', reason, accepted, blame: 'none' };
  return error.retryable ? { kind: 'failed', reason, accepted, blame: 'worker' } : { kind: 'rejected', error };
}

/** Best effort: tell a worker to stop a job we no longer want, and free its GPU. */
export async function cancelJob(http: Dispatcher, jobId: string, timeoutMs = 2000): Promise<void> {
  try {
    const response = await http.request({
      path: `/v1/jobs/${encodeURIComponent(jobId)}`,
      method: 'DELETE',
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.body.dump();
  } catch {
    // The worker may be gone; its own timeouts will end the job.
  }
}

/** What the gateway takes from an event: the worker's timings and warnings are for its own metrics. */
type StreamEvent = { readonly jobId: string } & (
  | { readonly event: 'accepted' }
  | { readonly event: 'progress'; readonly step: number; readonly steps: number }
  | { readonly event: 'result'; readonly images: JobImage[] }
  | { readonly event: 'error'; readonly error: WorkerError }
);

/**
 * `accepted`, `progress` and `result` lines — every line of a stream that goes well — are checked by hand,
 * in protocol v1's terms: what the gateway reads (the images) as strictly as the schema, the rest (timings,
 * warnings) not at all, since nothing here uses it. Anything else goes through the full protocol schema.
 */
function parseEvent(line: string): StreamEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value === 'object' && value !== null && 'event' in value && 'jobId' in value && typeof value.jobId === 'string') {
    const jobId = value.jobId;
    if (value.event === 'accepted') return { event: 'accepted', jobId };
    if (value.event === 'progress' && 'step' in value && 'steps' in value && Number.isInteger(value.step) && Number.isInteger(value.steps)) return { event: 'progress', jobId, step: value.step as number, steps: value.steps as number };
    if (value.event === 'result' && 'images' in value && isImageList(value.images)) return { event: 'result', images: value.images, jobId };
  }
  const parsed = jobEventSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

const imageFormats: ReadonlySet<unknown> = new Set(['PNG', 'JPG', 'WEBP']);
/** Exactly what the protocol schema's z.uuid() accepts. */
const uuid = z.core.regexes.uuid();
const seed = /^\d{1,20}$/;

/** The protocol's JobImage list, checked by hand: the result line is the largest, and parsed for every task. */
function isImageList(images: unknown): images is JobImage[] {
  if (!Array.isArray(images) || images.length === 0) return false;
  for (const item of images as unknown[]) {
    if (typeof item !== 'object' || item === null) return false;
    const { imageUUID, seed: imageSeed, format, data, nsfw } = item as Record<string, unknown>;
    if (nsfw !== undefined && typeof nsfw !== 'boolean') return false;
    if (typeof imageUUID !== 'string' || !uuid.test(imageUUID)) return false;
    // Twenty digits may still exceed 2^64 - 1; fewer never do.
    if (typeof imageSeed !== 'string' || !seed.test(imageSeed) || (imageSeed.length === 20 && BigInt(imageSeed) > SEED_MAX)) return false;
    if (!imageFormats.has(format) || typeof data !== 'string' || data.length === 0) return false;
  }
  return true;
}

function parseRefusal(status: number, body: string): WorkerError {
  try {
    const parsed = workerErrorBodySchema.safeParse(JSON.parse(body));
    if (parsed.success) return parsed.data.error;
  } catch {
    // Not JSON: described by its status alone.
  }
  return { code: `http${status}`, message: 'no protocol error body', retryable: status >= 500 || status === 429 };
}

function describe(error: unknown): string {
  if (error && typeof error === 'object' && 'code' in error && typeof error.code === 'string') return error.code;
  return error instanceof Error ? error.message : String(error);
}
