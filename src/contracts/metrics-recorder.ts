/**
 * What the stages report as it happens, for /metrics: each stage holds one and never knows how it is
 * exposed. State that can be read at any moment (queue lengths, in-flight jobs, breakers, cache counters,
 * sockets) is not reported here; the metrics read it when scraped.
 */
export interface MetricsRecorder {
  /** A task of a request ended: `outcome` is `success` or its first error's code. */
  taskFinished(taskType: string, outcome: string, seconds: number): void;
  /** A task waited in the admission queue for a worker slot (it may have given up). */
  workerQueueWait(seconds: number): void;
  /** An async job or webhook delivery waited this long in its queue before its first attempt began. */
  jobQueueWait(queue: string, seconds: number): void;
  registryCall(outcome: 'success' | 'notFound' | 'failure', seconds: number): void;
  /** An embedding or LoRA file was refused on inspection, by the code its task is answered with. */
  modelFileRefused(code: string): void;
  /** One attempt to POST a webhook. */
  webhookAttempt(outcome: 'delivered' | 'failed', seconds: number): void;
}

/** For a gateway (or a test) without metrics: every report is dropped. */
export const silentMetrics: MetricsRecorder = {
  taskFinished: () => undefined,
  workerQueueWait: () => undefined,
  jobQueueWait: () => undefined,
  registryCall: () => undefined,
  modelFileRefused: () => undefined,
  webhookAttempt: () => undefined,
};
