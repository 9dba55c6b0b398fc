import type { FastifyBaseLogger, FastifyPluginCallback, FastifyRequest } from 'fastify';
import type { Span } from '@opentelemetry/api';
import type { Config } from './config.js';
import type { AttemptSpan, DispatchSpan, DispatchTracer } from './contracts/dispatch-tracing.js';

/**
 * OpenTelemetry traces (docs/decisions.md, "OpenTelemetry traces"): a span per HTTP request (@fastify/otel), a span per task's
 * dispatch with one child per attempt on a worker, and the attempt's W3C trace context in the job request, so
 * a worker's log lines carry the trace id. Exported in batches over OTLP/HTTP (JSON).
 *
 * Every OpenTelemetry module is imported here, dynamically, and only by startTracing: a gateway without an
 * OTLP endpoint configured loads none of them, and its requests and tasks pay nothing for tracing.
 */

export interface Tracing {
  /** @fastify/otel's plugin: register it before any route, so that every request gets its span. */
  readonly plugin: FastifyPluginCallback;
  /** For the dispatch stage: the task and attempt spans, and the headers that carry them to workers. */
  readonly dispatch: DispatchTracer;
  /** Sends the spans still buffered (waiting at most SHUTDOWN_TIMEOUT_MS for the collector), then stops tracing. */
  shutdown(): Promise<void>;
}

/** A collector that is down must not hold up the gateway's shutdown: the spans it has not taken are dropped. */
const SHUTDOWN_TIMEOUT_MS = 5000;

/** Requests that are not traced: probes and scrapes (every few seconds, they would drown the rest), and the WebSocket endpoint. */
function untraced(url: string, method: string): boolean {
  const path = url.split('?', 1)[0] ?? url;
  // GET /v1 is the WebSocket upgrade: its request span would last as long as the socket, and its tasks run
  // outside the request anyway (each task's dispatch span starts a trace of its own).
  return path.startsWith('/health/') || path === '/metrics' || (method === 'GET' && path === '/v1');
}

export async function startTracing(settings: NonNullable<Config['tracing']>, logger: Pick<FastifyBaseLogger, 'info' | 'warn'>): Promise<Tracing> {
  const [api, { W3CTraceContextPropagator }, { NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { defaultResource, resourceFromAttributes }, semconv, { FastifyOtelInstrumentation }] =
    await Promise.all([
      import('@opentelemetry/api'),
      import('@opentelemetry/core'),
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/semantic-conventions'),
      import('@fastify/otel'),
    ]);

  // Export failures (a collector that is down) are the SDK's diagnostics: warnings in the gateway's log.
  const report = (message: string, ...args: unknown[]) => logger.warn({ details: args.map(String) }, `OpenTelemetry: ${message}`);
  const ignore = () => undefined;
  api.diag.setLogger({ error: report, warn: report, info: ignore, debug: ignore, verbose: ignore }, { logLevel: api.DiagLogLevel.WARN, suppressOverrideMessage: true });

  const provider = new NodeTracerProvider({
    resource: defaultResource().merge(resourceFromAttributes({ [semconv.ATTR_SERVICE_NAME]: settings.serviceName })),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: settings.tracesUrl }))],
  });
  // The globals: AsyncLocalStorage carries the request's span to the task's dispatch, and the propagator
  // (W3C trace context only: a client's baggage is not passed on to workers) reads an incoming traceparent
  // in @fastify/otel and writes the job requests'.
  provider.register({ propagator: new W3CTraceContextPropagator() });

  const instrumentation = new FastifyOtelInstrumentation({
    // The request span and its handler's; a span for each lifecycle hook (auth, logging, headers) would
    // triple the spans of every request and say little.
    instrumentHooks: false,
    ignorePaths: ({ url, method }) => untraced(url, method),
    requestHook: (span: Span, request: FastifyRequest) => {
      // HTTP server spans are named by method and route (OpenTelemetry's HTTP conventions), never by raw URL.
      span.updateName(request.routeOptions.url ? `${request.method} ${request.routeOptions.url}` : request.method);
      // The gateway's request id (x-request-id), to find the request's log lines from its trace.
      span.setAttribute('clipgate.request.id', request.id);
    },
  });
  instrumentation.setTracerProvider(provider);
  const tracer = provider.getTracer('clipgate');

  function endWith(span: Span, outcome: string, failed: boolean, attribute: string, reason?: string): void {
    span.setAttribute(attribute, outcome);
    if (failed) {
      span.setAttribute(semconv.ATTR_ERROR_TYPE, outcome);
      span.setStatus({ code: api.SpanStatusCode.ERROR, ...(reason !== undefined && { message: reason }) });
    }
    span.end();
  }

  const dispatch: DispatchTracer = {
    startDispatch(task): DispatchSpan {
      const parent = api.context.active();
      const span = tracer.startSpan(
        `dispatch ${task.taskType}`,
        { kind: api.SpanKind.INTERNAL, attributes: { 'clipgate.task.type': task.taskType, 'clipgate.task.uuid': task.taskUUID, 'clipgate.model.air': task.model } },
        parent,
      );
      const within = api.trace.setSpan(parent, span);
      return {
        startAttempt(attempt): AttemptSpan {
          const url = new URL('/v1/jobs', attempt.workerUrl);
          const attemptSpan = tracer.startSpan(
            'POST /v1/jobs',
            {
              kind: api.SpanKind.CLIENT,
              attributes: {
                [semconv.ATTR_HTTP_REQUEST_METHOD]: 'POST',
                [semconv.ATTR_URL_FULL]: url.href,
                [semconv.ATTR_SERVER_ADDRESS]: url.hostname,
                [semconv.ATTR_SERVER_PORT]: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
                'clipgate.worker.url': attempt.workerUrl,
                'clipgate.job.id': attempt.jobId,
                'clipgate.job.attempt': attempt.attempt,
              },
            },
            within,
          );
          // The worker's parent is this attempt: its log lines name the trace, and its own spans (if it makes any) nest here.
          const headers: Record<string, string> = {};
          api.propagation.inject(api.trace.setSpan(within, attemptSpan), headers);
          return { headers, end: (outcome, reason) => endWith(attemptSpan, outcome, outcome !== 'result', 'clipgate.job.outcome', reason) };
        },
        end: (outcome, failed) => endWith(span, outcome, failed, 'clipgate.task.outcome'),
      };
    },
  };

  logger.info({ tracesUrl: settings.tracesUrl, serviceName: settings.serviceName }, 'OpenTelemetry traces on');
  let stopped: Promise<void> | undefined;
  return {
    plugin: instrumentation.plugin(),
    dispatch,
    shutdown() {
      stopped ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            logger.warn({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'OpenTelemetry: the collector did not take the last spans in time; they are dropped');
            resolve();
          }, SHUTDOWN_TIMEOUT_MS);
          timer.unref();
        });
        try {
          await Promise.race([provider.shutdown().catch((error: unknown) => logger.warn({ err: error }, 'OpenTelemetry: the last spans could not be sent')), timeout]);
        } finally {
          clearTimeout(timer);
          // The globals go with the provider, so that a gateway built after this one (in tests) can set its own.
          instrumentation.disable();
          api.trace.disable();
          api.context.disable();
          api.propagation.disable();
          api.diag.disable();
        }
      })();
      return stopped;
    },
  };
}
