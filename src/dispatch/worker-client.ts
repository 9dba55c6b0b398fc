import type { Dispatcher } from 'undici';
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
  /** Busy, crashed, 5xx, reset, broken stream: another worker may do it. `accepted` says whether the worker took it. */
  | { readonly kind: 'failed'; readonly reason: string; readonly accepted: boolean }
  | { readonly kind: 'timeout'; readonly phase: 'firstByte' | 'total' }
  | { readonly kind: 'cancelled' };

export interface JobDeadlines {
  readonly firstByteMs: number;
  readonly totalMs: number;
}

/** Worker answers are small JSON lines except the result, which carries base64 images. */
const MAX_LINE_BYTES = 256 * 1024 * 1024;

export async function runJob(http: Dispatcher, job: JobRequest, deadlines: JobDeadlines, signal: AbortSignal): Promise<JobOutcome> {
  const controller = new AbortController();
  let timedOut: 'firstByte' | 'total' | undefined;
  const abortFor = (phase: 'firstByte' | 'total') => () => {
    timedOut = phase;
    controller.abort(new Error(`${phase} deadline passed`));
  };
  const totalTimer = setTimeout(abortFor('total'), deadlines.totalMs);
  let firstByteTimer: NodeJS.Timeout | undefined = setTimeout(abortFor('firstByte'), Math.min(deadlines.firstByteMs, deadlines.totalMs));
  const onCallerAbort = () => controller.abort(signal.reason);
  signal.addEventListener('abort', onCallerAbort, { once: true });
  let accepted = false;

  const interrupted = (): JobOutcome | undefined => {
    if (signal.aborted) return { kind: 'cancelled' };
    if (timedOut) return { kind: 'timeout', phase: timedOut };
    return undefined;
  };

  try {
    let response: Dispatcher.ResponseData;
    try {
      response = await http.request({
        path: '/v1/jobs',
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
        body: JSON.stringify(job),
        signal: controller.signal,
        // Our own timers govern; undici's idle timers would only race them.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
    } catch (error) {
      return interrupted() ?? { kind: 'failed', reason: `could not reach the worker (${describe(error)})`, accepted };
    }

    if (response.statusCode !== 200) {
      const refusal = await readRefusal(response);
      if (response.statusCode >= 400 && response.statusCode < 500 && response.statusCode !== 429 && response.statusCode !== 409 && !refusal.retryable) {
        return { kind: 'rejected', error: refusal };
      }
      return { kind: 'failed', reason: `the worker answered ${response.statusCode} ${refusal.code}: ${refusal.message}`, accepted };
    }

    // Lines are searched for in each new chunk only; a long result line arrives in many chunks.
    const pending: string[] = [];
    let pendingLength = 0;
    // The stream is read to its end after the final event, so the connection goes back to the pool.
    let final: JobOutcome | undefined;
    try {
      for await (const chunk of response.body) {
        const text = (chunk as Buffer).toString('utf8');
        if (!text.includes('\n')) {
          pending.push(text);
          pendingLength += text.length;
          if (pendingLength > MAX_LINE_BYTES) return { kind: 'failed', reason: 'the worker sent an oversized event', accepted };
          continue;
        }
        const lines = (pending.join('') + text).split('\n');
        pending.length = 0;
        const rest = lines.pop() ?? '';
        pending.push(rest);
        pendingLength = rest.length;
        for (const raw of lines) {
          const line = raw.trim();
          if (line === '' || final) continue;
          const event = parseEvent(line);
          if (!event) return { kind: 'failed', reason: 'the worker sent an event that is not protocol v1', accepted };
          switch (event.event) {
            case 'accepted':
              accepted = true;
              clearTimeout(firstByteTimer);
              firstByteTimer = undefined;
              break;
            case 'progress':
              break;
            case 'result':
              final = { kind: 'result', images: event.images };
              break;
            case 'error':
              final = event.error.retryable ? { kind: 'failed', reason: `${event.error.code}: ${event.error.message}`, accepted } : { kind: 'rejected', error: event.error };
              break;
          }
        }
      }
    } catch (error) {
      return final ?? interrupted() ?? { kind: 'failed', reason: `the worker's stream broke (${describe(error)})`, accepted };
    }
    return final ?? interrupted() ?? { kind: 'failed', reason: 'the worker ended the stream without a result', accepted };
  } finally {
    clearTimeout(totalTimer);
    clearTimeout(firstByteTimer);
    signal.removeEventListener('abort', onCallerAbort);
  }
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

function parseEvent(line: string) {
  try {
    const parsed = jobEventSchema.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

async function readRefusal(response: Dispatcher.ResponseData): Promise<WorkerError> {
  try {
    const parsed = workerErrorBodySchema.safeParse(await response.body.json());
    if (parsed.success) return parsed.data.error;
  } catch {
    // Not JSON: described by its status alone.
  }
  return { code: `http${response.statusCode}`, message: 'no protocol error body', retryable: response.statusCode >= 500 || response.statusCode === 429 };
}

function describe(error: unknown): string {
  if (error && typeof error === 'object' && 'code' in error && typeof error.code === 'string') return error.code;
  return error instanceof Error ? error.message : String(error);
}
