import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { installBearerAuth } from './api/auth.js';
import { answerClientError } from './api/client-errors.js';
import { limitConnectionsPerAddress } from './api/connection-limit.js';
import { collectAllowedMethods } from './api/allowed-methods.js';
import { decodeRequestBodies } from './api/content-encoding.js';
import { installErrorHandling } from './api/error-handler.js';
import { sendError } from './api/send-error.js';
import { parseJsonBody, refuseForeignCharset } from './api/json-body.js';
import { registerOpenApi } from './api/plugins/openapi.js';
import { installRateLimits } from './api/rate-limits.js';
import { installLoadShedding } from './api/load-shedding.js';
import { requestIdOf } from './api/request-id.js';
import { RequestLogController } from './api/request-logging.js';
import { createDrain, type Drain } from './api/drain.js';
import { healthRoutes, type ReadinessProbe } from './api/routes/health.js';
import { embeddingFileRoutes } from './api/routes/embedding-files.js';
import { imageRoutes } from './api/routes/images.js';
import { modelRoutes } from './api/routes/models.js';
import { taskRoutes } from './api/routes/tasks.js';
import { taskEventRoutes } from './api/routes/task-events.js';
import { taskWebhookRoutes } from './api/routes/task-webhooks.js';
import { metricsRoutes } from './api/routes/metrics.js';
import { recordRequestMetrics } from './api/request-metrics.js';
import { createGatewayMetrics, type GatewayMetrics } from './metrics/gateway-metrics.js';
import { webSocketRoutes } from './api/websocket/websocket-route.js';
import { createMemorySessionStore } from './sessions/memory-session-store.js';
import { createAsyncDelivery, type AsyncDelivery } from './async-delivery.js';
import { createSessionHub, hubTiming, sessionTiming, type SessionHub } from './sessions/session-hub.js';
import { createApiKeys } from './tasks/api-keys.js';
import { createTaskService } from './tasks/task-service.js';
import { createTaskTypes } from './tasks/task-types.js';
import type { Config } from './config.js';
import { createError } from './errors.js';
import type { Dispatcher } from './contracts/dispatcher.js';
import type { ImageStore } from './dispatch/image-store.js';
import type { ContentStore } from './embeddings/content-store.js';
import { loggerOptions } from './logger.js';
import type { ModelResolver } from './contracts/model-resolver.js';
import type { DestinationStream } from 'pino';
import type { Tracing } from './tracing.js';
import type { RedisClient } from './cache/redis-clients.js';

export interface AppDependencies {
  readonly config: Config;
  readonly resolver: ModelResolver;
  readonly dispatcher: Dispatcher;
  /** Canonical embedding files served to workers; none are served when absent. */
  readonly contentStore?: ContentStore;
  /** Images of outputType URL; none are served when absent. */
  readonly imageStore?: ImageStore;
  /** The drain for shutdown: readiness, new work refused, work in flight tracked. A fresh one when absent. */
  readonly drain?: Drain;
  /** Where log lines go; stdout when absent. */
  readonly logStream?: DestinationStream;
  /** WebSocket sessions; in this process alone when absent. */
  readonly sessions?: SessionHub;
  /** Where rate limits are counted, for every replica; in this process when absent. */
  readonly rateLimitRedis?: RedisClient;
  /** The task ledger, the async queue and webhooks; in this process alone when absent. */
  readonly delivery?: AsyncDelivery;
  /** The metrics the stages record into; a registry of the app's own when absent (and METRICS_ENABLED). */
  readonly metrics?: GatewayMetrics;
  /** OpenTelemetry's request spans (@fastify/otel); none when absent. */
  readonly tracing?: Pick<Tracing, 'plugin'>;
}

/** The whole gateway as a Fastify instance, without a port: plugins and routes, nothing else. */
export async function buildApp(dependencies: AppDependencies): Promise<FastifyInstance> {
  const { config } = dependencies;
  const app: FastifyInstance = Fastify({
    logger: loggerOptions(config.logLevel, dependencies.logStream),
    bodyLimit: config.limits.bodyLimitBytes,
    genReqId: requestIdOf,
    // AIRs travel in paths (GET /v1/models/{air}); with percent-encoding they exceed the router's default.
    routerOptions: { maxParamLength: 1024 },
    // Requests Fastify refuses before routing (a malformed URL) still answer in the documented shape.
    frameworkErrors: (error, request, reply) => {
      reply.header('x-request-id', request.id);
      sendError(reply, createError('invalidUrl', `The request URL cannot be read (${error.code}); check its percent-encoding.`));
    },
    logController: new RequestLogController(),
    // Slow or stalled requests do not hold a connection: headers and body have deadlines (checked every
    // second), answering has not (a sync GPU job may take minutes).
    http: { headersTimeout: config.http.headersTimeoutMs, connectionsCheckingInterval: 1000 },
    requestTimeout: config.http.requestTimeoutMs,
    keepAliveTimeout: config.http.keepAliveTimeoutMs,
    clientErrorHandler: (error, socket) => answerClientError(error, socket, app.log),
  });
  limitConnectionsPerAddress(app.server, config.http.maxConnectionsPerIp);
  // First of all plugins, hooks and routes: @fastify/otel sees every route as it is added.
  if (dependencies.tracing) await app.register(dependencies.tracing.plugin);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  const drain = dependencies.drain ?? createDrain();
  const readiness: ReadinessProbe = { isReady: () => !drain.draining };
  // One callback-style hook for every response: on the hot path, each hook (and an async one's promise) costs
  // something per request. The request id goes back on every response, errors included. While draining, each
  // response closes its connection: a keep-alive socket that was busy when the drain began would otherwise
  // hold the shutdown open until the client's idle timeout.
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    if (!readiness.isReady()) reply.header('connection', 'close');
    done(null, payload);
  });

  decodeRequestBodies(app);
  // JSON only: Fastify's text/plain parser would let a string body through as if it were a task list.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    try {
      refuseForeignCharset(request.headers['content-type']);
      done(null, parseJsonBody(body as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  const metrics = config.metrics.enabled ? (dependencies.metrics ?? createGatewayMetrics()) : undefined;
  if (metrics) recordRequestMetrics(app, metrics);

  const allowedMethods = collectAllowedMethods(app);
  installErrorHandling(app, config.limits, allowedMethods);
  await installLoadShedding(app, { ...config.shedding, retryAfterSeconds: 1 });
  await registerOpenApi(app);
  const frameRateLimit = await installRateLimits(app, { max: config.rateLimitPerMinute, windowMs: 60_000, ...(dependencies.rateLimitRedis && { redis: dependencies.rateLimitRedis }) });
  await app.register(healthRoutes, { readiness });
  // Registered with or without their stores, so the document and the routes are the same in every gateway.
  await app.register(embeddingFileRoutes, { store: dependencies.contentStore });
  await app.register(imageRoutes, { store: dependencies.imageStore });

  const keys = createApiKeys(config.apiKeys);
  const delivery = dependencies.delivery ?? (await createAsyncDelivery({ config, dispatcher: dependencies.dispatcher, logger: app.log, ...(metrics && { recorder: metrics }) }));
  if (!dependencies.delivery) app.addHook('onClose', () => delivery.close());
  const service = createTaskService(
    createTaskTypes({
      keys,
      resolver: dependencies.resolver,
      dispatcher: dependencies.dispatcher,
      limits: config.limits,
      lookupsPerRequest: config.registryLimits.lookupsPerRequest,
      ledger: delivery.ledger,
      asyncTasks: delivery.asyncTasks,
      ...(delivery.webhooks && { webhooks: delivery.webhooks }),
      // The dispatcher ends every task within TASK_TIMEOUT_MS; a longer wait limit could never fire, and
      // its timer would only cost every task something.
      ...(config.syncWaitLimitMs < config.dispatch.taskTimeoutMs && { syncWaitLimitMs: config.syncWaitLimitMs }),
      // Twice the longest a sync task may run, and a second: a record older than that lost its replica.
      syncAbandonedAfterMs: 2 * config.dispatch.taskTimeoutMs + 1000,
      logger: app.log,
    }),
    keys,
    metrics,
  );
  // The task routes authorize inside: Runware's payload auth puts the key in the body.
  app.decorateRequest('principal', undefined);
  await app.register(taskRoutes, {
    service,
    keys,
    drain,
    maxTasksPerRequest: config.limits.maxTasksPerRequest,
    inlineOutputMaxMegapixels: config.limits.inlineOutputMaxMegapixels,
  });
  const sessions = dependencies.sessions ?? createSessionHub({ store: createMemorySessionStore(sessionTiming(config)), ...hubTiming(config), logger: app.log });
  if (!dependencies.sessions) app.addHook('onClose', () => sessions.close());
  await app.register(webSocketRoutes, {
    service,
    hub: sessions,
    drain,
    limits: {
      maxFrameBytes: config.limits.bodyLimitBytes,
      maxTasksPerFrame: config.limits.maxTasksPerRequest,
      maxTasksInFlight: config.websocket.maxTasksInFlight,
      maxBufferedBytes: config.websocket.maxBufferedBytes,
      idleMs: config.websocket.idleMs,
      slowReaderMs: config.websocket.slowReaderMs,
      maxSocketsPerKey: config.websocket.maxSocketsPerKey,
    },
    ...(frameRateLimit && { frameRateLimit }),
  });
  if (metrics) {
    metrics.readFrom({ sessions, queues: delivery.queues });
    await app.register(metricsRoutes, { metrics, token: config.metrics.token });
  }
  await app.register(taskEventRoutes, { ledger: delivery.ledger, keys, service, drain });
  await app.register(taskWebhookRoutes, { ledger: delivery.ledger, keys, service });
  await app.register(async (api) => {
    installBearerAuth(api, keys, { keyInBody: false });
    await api.register(modelRoutes, { resolver: dependencies.resolver, publicBaseUrl: config.publicBaseUrl });
  });

  return app;
}
