/**
 * Traces of the dispatch stage, in the stage's own terms: the stage never imports OpenTelemetry. It holds
 * a tracer only when tracing is configured (src/tracing.ts makes it); without one, a task costs one check.
 */
export interface DispatchTracer {
  /** A task's dispatch begins: a span, the child of the one active now (the HTTP request's, when there is one). */
  startDispatch(task: DispatchSpanTask): DispatchSpan;
}

export interface DispatchSpanTask {
  readonly taskType: string;
  readonly taskUUID: string;
  /** The model's AIR. */
  readonly model: string;
}

export interface DispatchSpan {
  /** One attempt of the task on one worker: a child span, whose trace context the job request carries. */
  startAttempt(attempt: DispatchAttempt): AttemptSpan;
  /** `success`, or the code of the error the task ended with. */
  end(outcome: string, failed: boolean): void;
}

export interface DispatchAttempt {
  /** The worker's base URL. */
  readonly workerUrl: string;
  readonly jobId: string;
  /** 1 for the first. */
  readonly attempt: number;
}

export interface AttemptSpan {
  /** Headers for the job request: W3C `traceparent` (and `tracestate` when there is one). */
  readonly headers: Readonly<Record<string, string>>;
  /** How the attempt went (`result`, or what failed), with the reason of a failure. */
  end(outcome: string, reason?: string): void;
}
