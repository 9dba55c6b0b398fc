import type { Dispatcher } from 'undici';
import type { Cancellation } from './cancellation.js';
import { jobEventSchema, workerErrorBodySchema, type JobEvent, type JobImage, type JobRequest, type WorkerError } from './worker-protocol.js';

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
  | { readonly kind: 'timeout'; readonly phase: 'firstByte' | 'total' }
  | { readonly kind: 'cancelled' };

export interface JobDeadlines {
  readonly firstByteMs: number;
  readonly totalMs: number;
}

/** Worker answers are small JSON lines except the result, which carries base64 images. */
const MAX_LINE_CHARS = 256 * 1024 * 1024;
/** An error body longer than this is cut: it only goes into a message. */
const MAX_REFUSAL_BYTES = 64 * 1024;

/**
 * Runs the job through undici's dispatch API with a handler rather than `request()` and a body stream: it
 * is the hot path of every task, and the handler avoids a stream, its promises and a second abort
 * controller per job. One timer serves both deadlines: the first byte until `accepted`, then the total.
 */
export function runJob(http: Dispatcher, job: JobRequest, deadlines: JobDeadlines, cancellation: Cancellation): Promise<JobOutcome> {
  return new Promise<JobOutcome>((resolve) => {
    if (cancellation.cancelled) {
      resolve({ kind: 'cancelled' });
      return;
    }
    const started = performance.now();
    let controller: Dispatcher.DispatchController | undefined;
    let settled = false;
    let accepted = false;
    let final: JobOutcome | undefined;
    let status = 0;
    let pending = '';
    const refusal: Buffer[] = [];
    let refusalBytes = 0;

    const settle = (outcome: JobOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stopListening();
      resolve(outcome);
    };
    const stop = (outcome: JobOutcome, reason: Error) => {
      settle(outcome);
      controller?.abort(reason);
    };
    const onDeadline = (phase: 'firstByte' | 'total') => () => stop({ kind: 'timeout', phase }, new Error(`${phase} deadline passed`));
    let timer = setTimeout(onDeadline('firstByte'), Math.min(deadlines.firstByteMs, deadlines.totalMs));
    const stopListening = cancellation.onCancel((reason) => stop({ kind: 'cancelled' }, reason));

    const onLine = (line: string) => {
      if (line === '' || final) return;
      const event = parseEvent(line);
      if (!event) {
        final = { kind: 'failed', reason: 'the worker sent an event that is not protocol v1', accepted, blame: 'worker' };
        return;
      }
      switch (event.event) {
        case 'accepted':
          if (accepted) return;
          accepted = true;
          clearTimeout(timer);
          timer = setTimeout(onDeadline('total'), Math.max(1, deadlines.totalMs - (performance.now() - started)));
          return;
        case 'progress':
          return;
        case 'result':
          final = { kind: 'result', images: event.images };
          return;
        case 'error':
          final = errorEventOutcome(event.error, accepted);
      }
    };

    http.dispatch(
      {
        path: '/v1/jobs',
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
        body: JSON.stringify(job),
        // Our own timer governs; undici's idle timers would only race it.
        headersTimeout: 0,
        bodyTimeout: 0,
      },
      {
        onRequestStart(requestController) {
          controller = requestController;
          if (settled) requestController.abort(new Error('no longer wanted'));
        },
        onResponseStart(_controller, statusCode) {
          status = statusCode;
        },
        onResponseData(_controller, chunk) {
          if (settled) return;
          if (status !== 200) {
            if (refusalBytes < MAX_REFUSAL_BYTES) refusal.push(chunk);
            refusalBytes += chunk.length;
            return;
          }
          // Lines are split only where the chunk has a newline; a long result line arrives in many chunks.
          const text = chunk.toString('utf8');
          const newline = text.indexOf('\n');
          if (newline < 0) {
            pending += text;
            if (pending.length > MAX_LINE_CHARS) stop({ kind: 'failed', reason: 'the worker sent an oversized event', accepted, blame: 'worker' }, new Error('oversized event'));
            return;
          }
          const lines = (pending + text).split('\n');
          pending = lines.pop() ?? '';
          for (const line of lines) onLine(line.trim());
        },
        onResponseEnd() {
          if (status !== 200) {
            settle(classifyRefusal(status, Buffer.concat(refusal).toString('utf8'), accepted));
            return;
          }
          onLine(pending.trim());
          // The stream is read to its end after the final event, so the connection goes back to the pool.
          settle(final ?? { kind: 'failed', reason: 'the worker ended the stream without a result', accepted, blame: 'worker' });
        },
        onResponseError(_controller, error) {
          settle(final ?? { kind: 'failed', reason: `${accepted ? "the worker's stream broke" : 'could not reach the worker'} (${describe(error)})`, accepted, blame: 'worker' });
        },
      },
    );
  });
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

/**
 * `accepted` and `progress` lines — most of a stream — are checked by hand; the final `result` or `error`
 * goes through the full protocol schema.
 */
function parseEvent(line: string): JobEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value === 'object' && value !== null && 'event' in value && 'jobId' in value && typeof value.jobId === 'string') {
    if (value.event === 'accepted') return { event: 'accepted', jobId: value.jobId };
    if (value.event === 'progress' && 'step' in value && 'steps' in value && Number.isInteger(value.step) && Number.isInteger(value.steps)) {
      return { event: 'progress', jobId: value.jobId, step: Number(value.step), steps: Number(value.steps) };
    }
    if (value.event === 'result' && 'images' in value && isImageList(value.images)) {
      return { event: 'result', jobId: value.jobId, images: value.images, timings: { queueMs: 0, embeddingMs: 0, inferenceMs: 0, totalMs: 0, ...timingsOf(value) } };
    }
  }
  const parsed = jobEventSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

const imageFormats: ReadonlySet<unknown> = new Set(['PNG', 'JPG', 'WEBP']);
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const seed = /^\d{1,20}$/;

/** The protocol's JobImage list, checked by hand: the result line is the largest, and parsed for every task. */
function isImageList(images: unknown): images is JobImage[] {
  return (
    Array.isArray(images) &&
    images.length > 0 &&
    images.every(
      (image: unknown) =>
        typeof image === 'object' &&
        image !== null &&
        'imageUUID' in image &&
        'seed' in image &&
        'format' in image &&
        'data' in image &&
        typeof image.imageUUID === 'string' &&
        uuid.test(image.imageUUID) &&
        typeof image.seed === 'string' &&
        seed.test(image.seed) &&
        BigInt(image.seed) < 2n ** 64n &&
        imageFormats.has(image.format) &&
        typeof image.data === 'string' &&
        image.data.length > 0,
    )
  );
}

function timingsOf(value: object): Record<string, number> {
  if (!('timings' in value) || typeof value.timings !== 'object' || value.timings === null) return {};
  return Object.fromEntries(Object.entries(value.timings).filter((entry): entry is [string, number] => typeof entry[1] === 'number'));
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
