import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ResolutionMetrics } from '../cache/resolution-metrics.js';
import type { JobCounts } from '../contracts/job-queue.js';
import type { MetricsRecorder } from '../contracts/metrics-recorder.js';
import type { WorkerPool } from '../dispatch/worker-pool.js';
import type { SessionHub } from '../sessions/session-hub.js';
import { LatencyHistogram, type HistogramSeries } from './latency-histogram.js';

/**
 * The gateway's Prometheus metrics, one registry per gateway (tests run several in one process). Events are
 * recorded as they happen (MetricsRecorder); state is read when scraped from the parts that hold it — the
 * worker pool, the resolution counters, the sessions, the queues — so the hot path pays nothing for it.
 */
export interface GatewayMetrics extends MetricsRecorder {
  /** This gateway's series; the process's (CPU, memory, event loop, GC) are in `processMetrics`. */
  readonly registry: Registry;
  /** The exposition /metrics answers: the process's series and this gateway's. */
  exposition(): Promise<string>;
  /** An HTTP request was answered; `route` is the matched route's pattern, never the raw URL. */
  requestFinished(method: string, route: string, statusCode: number, seconds: number): void;
  /** The parts whose state is read at each scrape; what is not given is not reported. */
  readFrom(sources: MetricSources): void;
}

export interface MetricSources {
  readonly resolution?: ResolutionMetrics;
  readonly pool?: WorkerPool;
  readonly sessions?: Pick<SessionHub, 'attachedCount' | 'runningCount' | 'watchedCount'>;
  readonly queues?: ReadonlyMap<string, { counts(): Promise<JobCounts> }>;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const REGISTRY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const WAIT_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];
const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;

/**
 * prom-client's process and Node.js series, collected once per process: each collection starts an event-loop
 * delay monitor and a GC observer that are never stopped, so one per gateway would leak them in a process that
 * builds many (the tests).
 */
let processMetrics: Registry | undefined;

function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

export function createGatewayMetrics(): GatewayMetrics {
  const registry = new Registry();
  const process = processRegistry();
  const registers = [registry];
  let sources: MetricSources = {};

  // The two histograms every request and task passes through observe without allocating (latency-histogram.ts).
  const requests = new LatencyHistogram(
    'clipgate_http_request_duration_seconds',
    'HTTP requests by method, route pattern and status code, from arrival to the last byte of the answer.',
    ['method', 'route', 'status_code'],
    LATENCY_BUCKETS,
  ).registerIn(registry);
  const tasks = new LatencyHistogram(
    'clipgate_task_duration_seconds',
    'Tasks by task type and outcome (success, or the code of their first error), from their request to their last answer.',
    ['task_type', 'outcome'],
    LATENCY_BUCKETS,
  ).registerIn(registry);
  const workerQueueWait = new Histogram({
    name: 'clipgate_worker_queue_wait_seconds',
    help: 'Time tasks waited in the admission queue for a worker slot: those that found every eligible worker full (including those that gave up).',
    buckets: WAIT_BUCKETS,
    registers,
  });
  const jobQueueWait = new Histogram({
    name: 'clipgate_job_queue_wait_seconds',
    help: 'Time jobs (async tasks, webhook deliveries) waited in their queue before their first attempt, on this replica.',
    labelNames: ['queue'],
    buckets: WAIT_BUCKETS,
    registers,
  });
  const registryCalls = new Histogram({
    name: 'clipgate_registry_request_duration_seconds',
    help: 'Model registry lookups by outcome (success, notFound, failure), retries included.',
    labelNames: ['outcome'],
    buckets: REGISTRY_BUCKETS,
    registers,
  });
  const refusals = new Counter({
    name: 'clipgate_model_file_refusals_total',
    help: 'Embedding and LoRA files refused on inspection, by the error code their tasks are answered with.',
    labelNames: ['code'],
    registers,
  });
  const webhooks = new Histogram({
    name: 'clipgate_webhook_attempt_duration_seconds',
    help: 'Webhook POST attempts by outcome (delivered: a 2xx; failed: anything else, retried or not).',
    labelNames: ['outcome'],
    buckets: REGISTRY_BUCKETS,
    registers,
  });

  const workerGauge = (name: string, help: string, read: (worker: WorkerPool['workers'][number]) => number) =>
    new Gauge({
      registers: [],
      name,
      help,
      labelNames: ['worker'],
      collect() {
        this.reset();
        for (const worker of sources.pool?.workers ?? []) this.set({ worker: worker.url }, read(worker));
      },
    });
  // Gauges read from their sources when scraped. `registers: []` on each: without it prom-client also puts a
  // metric in its process-wide registry, and a second gateway in the process could not make its own.
  const scrapedGauges = [
    new Gauge({
      registers: [],
      name: 'clipgate_worker_queue_length',
      help: 'Tasks waiting in this replica for a worker slot.',
      collect() {
        this.set(sources.pool?.queueLength ?? 0);
      },
    }),
    workerGauge('clipgate_worker_in_flight', 'Jobs this replica has running on each worker.', (worker) => worker.inFlight),
    workerGauge('clipgate_worker_capacity', 'Jobs each worker says it runs at once (its last health report).', (worker) => worker.capacity),
    workerGauge('clipgate_worker_healthy', '1 when the worker answers its health checks, else 0.', (worker) => (worker.healthy ? 1 : 0)),
    new Gauge({
      registers: [],
      name: 'clipgate_worker_breaker_state',
      help: "Each worker's circuit breaker: 1 for the state it is in (closed, open, half-open), 0 for the others.",
      labelNames: ['worker', 'state'],
      collect() {
        this.reset();
        for (const worker of sources.pool?.workers ?? []) {
          const current = worker.breaker.state();
          for (const state of BREAKER_STATES) this.set({ worker: worker.url, state }, state === current ? 1 : 0);
        }
      },
    }),
    new Gauge({
      registers: [],
      name: 'clipgate_job_queue_jobs',
      help: 'Jobs in each queue by state (waiting, active, delayed: in a retry backoff), across the replicas sharing it.',
      labelNames: ['queue', 'state'],
      async collect() {
        this.reset();
        const queues = [...(sources.queues ?? [])];
        const counted = await Promise.allSettled(queues.map(([, queue]) => queue.counts()));
        counted.forEach((result, index) => {
          // A queue whose Redis does not answer is left out of this scrape rather than reported as empty.
          if (result.status !== 'fulfilled') return;
          const queue = queues[index]![0];
          for (const [state, count] of Object.entries(result.value)) this.set({ queue, state }, count);
        });
      },
    }),
  ];
  for (const gauge of scrapedGauges) registry.registerMetric(gauge);

  const resolutionCounter = (name: string, help: string, labelName: string, read: (metrics: ResolutionMetrics) => Record<string, number>) =>
    new Counter({
      name,
      help,
      labelNames: [labelName],
      registers,
      collect() {
        this.reset();
        if (!sources.resolution) return;
        for (const [label, value] of Object.entries(read(sources.resolution))) this.inc({ [labelName]: label }, value);
      },
    });
  resolutionCounter('clipgate_cache_lookups_total', 'Model lookups by where they were answered: l1 (this process), l2 (Redis), stale (served while refreshed), miss.', 'result', (metrics) => ({
    l1: metrics.l1Hits,
    l2: metrics.l2Hits,
    stale: metrics.staleServed,
    miss: metrics.misses,
  }));
  resolutionCounter('clipgate_cache_coalesced_total', 'Lookups that waited for another one instead of asking the source: local (same process), peer (another replica held the lock).', 'where', (metrics) => ({
    local: metrics.coalescedLocal,
    peer: metrics.coalescedPeer,
  }));
  resolutionCounter('clipgate_cache_errors_total', 'Lookups that found trouble: redis (a failed command), deferred (over the request\'s share of cold lookups), over_deadline.', 'kind', (metrics) => ({
    redis: metrics.redisErrors,
    deferred: metrics.lookupsDeferred,
    over_deadline: metrics.lookupsOverDeadline,
  }));
  resolutionCounter('clipgate_model_file_downloads_total', 'Embedding and LoRA files (or LoRA headers) fetched for inspection.', 'kind', (metrics) => ({ file: metrics.downloads }));

  const websocketGauge = (name: string, help: string, read: (hub: NonNullable<MetricSources['sessions']>) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(sources.sessions ? read(sources.sessions) : 0);
      },
    });
  websocketGauge('clipgate_websocket_sessions_attached', 'WebSocket sessions with an open socket on this replica.', (hub) => hub.attachedCount);
  websocketGauge('clipgate_websocket_sessions_detached', 'WebSocket sessions whose socket dropped, inside their resume window, with tasks running here.', (hub) => hub.watchedCount);
  websocketGauge('clipgate_websocket_tasks_running', 'Tasks sent over WebSocket that run on this replica now.', (hub) => hub.runningCount);

  // Series by method, then route, then status; by task type, then outcome: nested maps, so a lookup builds no key.
  const requestSeries = new Map<string, Map<string, Map<number, HistogramSeries>>>();
  const taskSeries = new Map<string, Map<string, HistogramSeries>>();

  return {
    registry,
    async exposition() {
      const [own, shared] = await Promise.all([registry.metrics(), process.metrics()]);
      return `${shared}\n${own}`;
    },
    readFrom(given) {
      sources = { ...sources, ...given };
    },
    requestFinished(method, route, statusCode, seconds) {
      const byRoute = lookUp(requestSeries, method, () => new Map());
      const byStatus = lookUp(byRoute, route, () => new Map());
      lookUp(byStatus, statusCode, () => requests.labels(method, route, String(statusCode))).observe(seconds);
    },
    taskFinished(taskType, outcome, seconds) {
      lookUp(lookUp(taskSeries, taskType, () => new Map()), outcome, () => tasks.labels(taskType, outcome)).observe(seconds);
    },
    workerQueueWait: (seconds) => workerQueueWait.observe(seconds),
    jobQueueWait: (queue, seconds) => jobQueueWait.labels(queue).observe(seconds),
    registryCall: (outcome, seconds) => registryCalls.labels(outcome).observe(seconds),
    modelFileRefused: (code) => refusals.labels(code).inc(),
    webhookAttempt: (outcome, seconds) => webhooks.labels(outcome).observe(seconds),
  };
}

function lookUp<K, V>(map: Map<K, V>, key: K, create: () => V): V {
  let value = map.get(key);
  if (value === undefined) map.set(key, (value = create()));
  return value;
}
