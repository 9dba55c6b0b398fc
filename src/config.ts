import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { MAX_EMBEDDINGS_CEILING } from './contracts/task-limits.js';

/**
 * Environment → typed configuration (DESIGN §8). Every variable is validated here, and a bad one stops
 * start-up with a message that names it; nothing else in clipgate reads process.env.
 */

const positiveInt = (fallback: number, max: number) => z.coerce.number().int().min(1).max(max).default(fallback);

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const environmentSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  LOG_LEVEL: z.enum(logLevels).default('info'),
  API_KEYS: z
    .string()
    .default('')
    .transform((raw) => raw.split(',').map((key) => key.trim()).filter((key) => key.length > 0))
    .pipe(z.array(z.string().min(16, 'each API key must be at least 16 characters long'))),
  MODEL_CATALOG_PATH: z.string().min(1).optional(),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .optional(),
  REDIS_CLUSTER_NODES: z
    .string()
    .transform((raw, context) => {
      const parsed = parseRedisNodes(raw, { urls: true, defaultPort: 6379 });
      if (typeof parsed === 'string') context.addIssue({ code: 'custom', message: parsed });
      return typeof parsed === 'string' ? z.NEVER : parsed;
    })
    .optional(),
  REDIS_SENTINELS: z
    .string()
    .transform((raw, context) => {
      const parsed = parseRedisNodes(raw, { urls: false, defaultPort: 26379 });
      if (typeof parsed === 'string') context.addIssue({ code: 'custom', message: parsed });
      return typeof parsed === 'string' ? z.NEVER : parsed.nodes;
    })
    .optional(),
  REDIS_SENTINEL_NAME: z.string().regex(/^[\w.-]+$/, 'must be the name of the master group the sentinels monitor').optional(),
  REDIS_PASSWORD: z.string().optional(),
  REDIS_SENTINEL_PASSWORD: z.string().optional(),
  CIVITAI_BASE_URL: z
    .union([z.literal('off'), z.url({ protocol: /^https?$/ })])
    .default('https://civitai.com'),
  CIVITAI_TOKEN: z.string().min(1).optional(),
  REGISTRY_TIMEOUT_MS: positiveInt(10_000, 120_000),
  REGISTRY_LOOKUP_DEADLINE_MS: positiveInt(15_000, 600_000),
  REGISTRY_CONCURRENCY: positiveInt(8, 256),
  REGISTRY_CONCURRENCY_PER_KEY: positiveInt(4, 256),
  REGISTRY_LOOKUPS_PER_REQUEST: positiveInt(16, 10_000),
  EMBEDDING_MAX_BYTES: positiveInt(16 * 1024 * 1024, 1024 * 1024 * 1024),
  MODEL_CACHE_TTL_SECONDS: positiveInt(3600, 30 * 86_400),
  MODEL_CACHE_STALE_SECONDS: positiveInt(86_400, 365 * 86_400),
  MODEL_CACHE_NEGATIVE_TTL_SECONDS: positiveInt(300, 86_400),
  PUBLIC_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  WORKER_URLS: z
    .string()
    .default('')
    .transform((raw) => raw.split(',').map((url) => url.trim()).filter((url) => url.length > 0))
    .pipe(
      z
        .array(z.url({ protocol: /^https?$/, error: 'each worker URL must be an http(s) URL' }))
        .refine((urls) => urls.every((url) => ['', '/'].includes(new URL(url).pathname)), 'worker URLs are base URLs (scheme, host, port) without a path')
        .refine((urls) => new Set(urls.map((url) => new URL(url).origin)).size === urls.length, 'each worker may be listed once'),
    ),
  QUEUE_MAX: positiveInt(100, 100_000),
  QUEUE_WAIT_MS: positiveInt(30_000, 600_000),
  TASK_TIMEOUT_MS: positiveInt(120_000, 3_600_000),
  TASK_FIRST_BYTE_TIMEOUT_MS: positiveInt(10_000, 600_000),
  TASK_PROGRESS_TIMEOUT_MS: positiveInt(30_000, 3_600_000),
  DISPATCH_MAX_ATTEMPTS: positiveInt(3, 10),
  WORKER_HEALTH_INTERVAL_MS: positiveInt(2000, 600_000),
  BREAKER_FAILURE_THRESHOLD: positiveInt(5, 1000),
  BREAKER_COOLDOWN_MS: positiveInt(10_000, 3_600_000),
  IMAGE_STORE_DIR: z.string().min(1).optional(),
  IMAGE_TTL_SECONDS: positiveInt(86_400, 365 * 86_400),
  COST_PER_MEGAPIXEL_STEP: z.coerce.number().min(0).max(1000).default(0.0001),
  MAX_TASKS_PER_REQUEST: positiveInt(100, 10_000),
  MAX_EMBEDDINGS_PER_TASK: positiveInt(10, MAX_EMBEDDINGS_CEILING),
  BODY_LIMIT_BYTES: positiveInt(2 * 1024 * 1024, 256 * 1024 * 1024),
  INLINE_OUTPUT_MAX_MEGAPIXELS: positiveInt(64, 100),
  DRAIN_GRACE_MS: positiveInt(25_000, 3_600_000),
  HTTP_HEADERS_TIMEOUT_MS: positiveInt(10_000, 600_000),
  HTTP_REQUEST_TIMEOUT_MS: positiveInt(30_000, 3_600_000),
  HTTP_KEEPALIVE_TIMEOUT_MS: positiveInt(72_000, 3_600_000),
  HTTP_MAX_CONNECTIONS_PER_IP: positiveInt(256, 1_000_000),
  WS_MAX_TASKS_IN_FLIGHT: positiveInt(100, 100_000),
  WS_MAX_SOCKETS_PER_KEY: positiveInt(100, 100_000),
  WS_MAX_BUFFERED_BYTES: positiveInt(64 * 1024 * 1024, 1024 * 1024 * 1024),
  WS_IDLE_TIMEOUT_MS: positiveInt(120_000, 3_600_000),
  WS_SLOW_READER_TIMEOUT_MS: positiveInt(30_000, 600_000),
  WS_RESUME_WINDOW_SECONDS: positiveInt(120, 86_400),
  TASK_LEDGER_TTL_SECONDS: positiveInt(86_400, 30 * 86_400),
  SYNC_WAIT_LIMIT_SECONDS: positiveInt(300, 86_400),
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).max(10_000_000).default(0),
  SHED_EVENT_LOOP_DELAY_MS: z.coerce.number().int().min(0).max(600_000).default(0),
  SHED_HEAP_USED_BYTES: z.coerce.number().int().min(0).default(0),
  ASYNC_CONCURRENCY: positiveInt(32, 10_000),
  ASYNC_LOCK_MS: positiveInt(30_000, 3_600_000),
  ASYNC_MAX_ATTEMPTS: positiveInt(3, 100),
  WEBHOOK_SIGNING_SECRET: z.string().min(32, 'must be at least 32 characters (receivers verify signatures with it)').optional(),
  WEBHOOK_ALLOWED_HOSTS: z
    .string()
    .default('')
    .transform((raw) => raw.split(',').map((host) => host.trim().toLowerCase()).filter((host) => host.length > 0)),
  WEBHOOK_REQUIRE_HTTPS: z.enum(['true', 'false']).optional(),
  METRICS_ENABLED: z.enum(['true', 'false']).default('true'),
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  WEBHOOK_MAX_ATTEMPTS: positiveInt(8, 100),
  WEBHOOK_BACKOFF_MS: positiveInt(1000, 3_600_000),
  WEBHOOK_TIMEOUT_MS: positiveInt(10_000, 600_000),
  // OpenTelemetry's own names (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/).
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  OTEL_SERVICE_NAME: z.string().min(1).default('clipgate'),
  OTEL_SDK_DISABLED: z.enum(['true', 'false']).optional(),
});

/** One address of a Redis Cluster node or of a sentinel. */
export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/**
 * Which Redis the replicas share, from exactly one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS.
 * Clients are built from it in one place (src/cache/redis-clients.ts).
 */
export type RedisTarget =
  /** One Redis; a password in the URL wins over REDIS_PASSWORD. */
  | { readonly mode: 'single'; readonly url: string; readonly password: string | undefined }
  /** Redis Cluster: seed nodes (the others are discovered); database 0 only. */
  | { readonly mode: 'cluster'; readonly nodes: readonly RedisNode[]; readonly username: string | undefined; readonly password: string | undefined; readonly tls: boolean }
  /** The master of a group that Sentinel monitors, found again after a failover. */
  | { readonly mode: 'sentinel'; readonly sentinels: readonly RedisNode[]; readonly name: string; readonly password: string | undefined; readonly sentinelPassword: string | undefined };

export interface Config {
  readonly environment: 'development' | 'production' | 'test';
  readonly port: number;
  readonly host: string;
  readonly logLevel: (typeof logLevels)[number];
  /** Empty means the API is open (refused in production). */
  readonly apiKeys: readonly string[];
  /** GET /metrics for Prometheus (and the recording behind it); behind a bearer token when one is set. */
  readonly metrics: { readonly enabled: boolean; readonly token: string | undefined };
  readonly modelCatalogPath: string | undefined;
  /** Unset: no shared cache; every tier is in-process. */
  readonly redis: RedisTarget | undefined;
  /** Undefined when the registry is switched off (CIVITAI_BASE_URL=off). */
  readonly registry: { readonly baseUrl: string; readonly token: string | undefined; readonly timeoutMs: number } | undefined;
  readonly registryLimits: {
    /** The longest a request waits for one cold lookup (registry and download); the lookup itself goes on. */
    readonly lookupDeadlineMs: number;
    /** Registry lookups (with downloads) this replica runs at once, and one API key of them. */
    readonly concurrency: number;
    readonly concurrencyPerKey: number;
    /** Cold AIRs one request may send to the registry; the rest are deferred (retryable). */
    readonly lookupsPerRequest: number;
  };
  readonly embeddingMaxBytes: number;
  readonly modelCache: { readonly ttlSeconds: number; readonly staleSeconds: number; readonly negativeTtlSeconds: number };
  /** How workers and clients reach this gateway, for the URLs it hands out. */
  readonly publicBaseUrl: string;
  readonly dispatch: {
    readonly workerUrls: readonly string[];
    readonly queueMax: number;
    readonly queueWaitMs: number;
    readonly taskTimeoutMs: number;
    readonly firstByteTimeoutMs: number;
    readonly progressTimeoutMs: number;
    readonly maxAttempts: number;
    readonly healthIntervalMs: number;
    readonly breakerFailureThreshold: number;
    readonly breakerCooldownMs: number;
  };
  /** Where images of outputType URL are kept; a directory shared by the replicas when there are several. */
  readonly imageStoreDir: string;
  /** How long stored images are kept before the sweep deletes them. */
  readonly imageTtlSeconds: number;
  /** How long getResponse can find a finished task (TASK_LEDGER_TTL_SECONDS). */
  readonly taskLedgerTtlSeconds: number;
  /** Price of one step on one megapixel, for the `cost` of a task with includeCost. */
  readonly costPerMegapixelStep: number;
  readonly limits: {
    readonly maxTasksPerRequest: number;
    readonly maxEmbeddingsPerTask: number;
    readonly bodyLimitBytes: number;
    /** Inline images (base64Data, dataURI) one REST answer may carry, in megapixels over all its tasks. */
    readonly inlineOutputMaxMegapixels: number;
  };
  /** After SIGTERM, how long work in flight may run on before it is stopped and answered retryably. */
  readonly drainGraceMs: number;
  readonly http: {
    /** The request's headers must arrive within this. */
    readonly headersTimeoutMs: number;
    /** The whole request (headers and body) must arrive within this; answering it may take longer. */
    readonly requestTimeoutMs: number;
    /** An idle keep-alive connection is closed after this (longer than a load balancer's idle timeout). */
    readonly keepAliveTimeoutMs: number;
    readonly maxConnectionsPerIp: number;
  };
  readonly websocket: {
    readonly maxTasksInFlight: number;
    readonly maxSocketsPerKey: number;
    readonly maxBufferedBytes: number;
    readonly idleMs: number;
    readonly slowReaderMs: number;
    /** How long a dropped session, its tasks and their undelivered answers are kept for a resume. */
    readonly resumeWindowMs: number;
  };
  /** Requests per API key per minute; 0: no limit. */
  readonly rateLimitPerMinute: number;
  /** Load shedding: 0 turns each check off. */
  readonly shedding: { readonly maxEventLoopDelayMs: number; readonly maxHeapUsedBytes: number };
  /** How long a sync request waits for its task before answering that it continues asynchronously. */
  readonly syncWaitLimitMs: number;
  readonly async: {
    /** Async tasks one replica runs at once. */
    readonly concurrency: number;
    /** A dead replica's running jobs are taken up again after this long. */
    readonly lockMs: number;
    /** Tries of a job whose ledger or queue write failed. */
    readonly maxAttempts: number;
  };
  readonly webhooks: {
    /** Absent: tasks with a webhookURL are refused (receivers could not verify anything). */
    readonly signingSecret: string | undefined;
    readonly allowedHosts: readonly string[];
    readonly requireHttps: boolean;
    readonly maxAttempts: number;
    readonly backoffMs: number;
    readonly timeoutMs: number;
  };
  /**
   * OpenTelemetry traces, exported over OTLP/HTTP (JSON) to `tracesUrl`. Undefined unless an OTLP endpoint
   * is set: then nothing of OpenTelemetry is even loaded.
   */
  readonly tracing: { readonly tracesUrl: string; readonly serviceName: string } | undefined;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
  }
}

/** Values never echoed in an error message: they are secrets. */
const secretVariables: ReadonlySet<string> = new Set(['API_KEYS', 'CIVITAI_TOKEN', 'METRICS_TOKEN', 'REDIS_URL', 'REDIS_CLUSTER_NODES', 'REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD', 'WEBHOOK_SIGNING_SECRET']);

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings mean "unset" for every variable: `PORT= npm start` should not be a type error.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = environmentSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const variable = String(issue.path[0] ?? '(environment)');
        const echo = variable in present && !secretVariables.has(variable) ? ` (got "${present[variable]}")` : '';
        return `${variable}: ${issue.message}${echo}`;
      }),
    );
  }
  const values = parsed.data;
  if (values.METRICS_TOKEN !== undefined && values.METRICS_ENABLED === 'false') {
    throw new ConfigError(['METRICS_TOKEN: set while METRICS_ENABLED=false, so it would protect nothing; unset one of them']);
  }
  if (values.NODE_ENV === 'production' && values.API_KEYS.length === 0) {
    throw new ConfigError(['API_KEYS: required when NODE_ENV=production; an open gateway would serve anyone']);
  }
  const redis = redisTargetOf(values);
  return {
    environment: values.NODE_ENV,
    port: values.PORT,
    host: values.HOST,
    logLevel: values.LOG_LEVEL,
    apiKeys: values.API_KEYS,
    metrics: { enabled: values.METRICS_ENABLED === 'true', token: values.METRICS_TOKEN },
    modelCatalogPath: values.MODEL_CATALOG_PATH,
    redis,
    registry:
      values.CIVITAI_BASE_URL === 'off'
        ? undefined
        : { baseUrl: values.CIVITAI_BASE_URL.replace(/\/+$/, ''), token: values.CIVITAI_TOKEN, timeoutMs: values.REGISTRY_TIMEOUT_MS },
    registryLimits: {
      lookupDeadlineMs: values.REGISTRY_LOOKUP_DEADLINE_MS,
      concurrency: values.REGISTRY_CONCURRENCY,
      concurrencyPerKey: Math.min(values.REGISTRY_CONCURRENCY_PER_KEY, values.REGISTRY_CONCURRENCY),
      lookupsPerRequest: values.REGISTRY_LOOKUPS_PER_REQUEST,
    },
    embeddingMaxBytes: values.EMBEDDING_MAX_BYTES,
    modelCache: {
      ttlSeconds: values.MODEL_CACHE_TTL_SECONDS,
      staleSeconds: values.MODEL_CACHE_STALE_SECONDS,
      negativeTtlSeconds: values.MODEL_CACHE_NEGATIVE_TTL_SECONDS,
    },
    publicBaseUrl: (values.PUBLIC_BASE_URL ?? `http://127.0.0.1:${values.PORT}`).replace(/\/+$/, ''),
    dispatch: {
      workerUrls: values.WORKER_URLS,
      queueMax: values.QUEUE_MAX,
      queueWaitMs: values.QUEUE_WAIT_MS,
      taskTimeoutMs: values.TASK_TIMEOUT_MS,
      firstByteTimeoutMs: Math.min(values.TASK_FIRST_BYTE_TIMEOUT_MS, values.TASK_TIMEOUT_MS),
      progressTimeoutMs: values.TASK_PROGRESS_TIMEOUT_MS,
      maxAttempts: values.DISPATCH_MAX_ATTEMPTS,
      healthIntervalMs: values.WORKER_HEALTH_INTERVAL_MS,
      breakerFailureThreshold: values.BREAKER_FAILURE_THRESHOLD,
      breakerCooldownMs: values.BREAKER_COOLDOWN_MS,
    },
    imageStoreDir: values.IMAGE_STORE_DIR ?? join(tmpdir(), 'clipgate-images'),
    imageTtlSeconds: values.IMAGE_TTL_SECONDS,
    taskLedgerTtlSeconds: values.TASK_LEDGER_TTL_SECONDS,
    costPerMegapixelStep: values.COST_PER_MEGAPIXEL_STEP,
    limits: {
      maxTasksPerRequest: values.MAX_TASKS_PER_REQUEST,
      maxEmbeddingsPerTask: values.MAX_EMBEDDINGS_PER_TASK,
      bodyLimitBytes: values.BODY_LIMIT_BYTES,
      inlineOutputMaxMegapixels: values.INLINE_OUTPUT_MAX_MEGAPIXELS,
    },
    drainGraceMs: values.DRAIN_GRACE_MS,
    http: {
      // Node wants the headers deadline within the request's.
      headersTimeoutMs: Math.min(values.HTTP_HEADERS_TIMEOUT_MS, values.HTTP_REQUEST_TIMEOUT_MS),
      requestTimeoutMs: values.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: values.HTTP_KEEPALIVE_TIMEOUT_MS,
      maxConnectionsPerIp: values.HTTP_MAX_CONNECTIONS_PER_IP,
    },
    websocket: {
      maxTasksInFlight: values.WS_MAX_TASKS_IN_FLIGHT,
      maxSocketsPerKey: values.WS_MAX_SOCKETS_PER_KEY,
      maxBufferedBytes: values.WS_MAX_BUFFERED_BYTES,
      idleMs: values.WS_IDLE_TIMEOUT_MS,
      slowReaderMs: values.WS_SLOW_READER_TIMEOUT_MS,
      resumeWindowMs: values.WS_RESUME_WINDOW_SECONDS * 1000,
    },
    rateLimitPerMinute: values.RATE_LIMIT_PER_MINUTE,
    shedding: { maxEventLoopDelayMs: values.SHED_EVENT_LOOP_DELAY_MS, maxHeapUsedBytes: values.SHED_HEAP_USED_BYTES },
    syncWaitLimitMs: values.SYNC_WAIT_LIMIT_SECONDS * 1000,
    async: { concurrency: values.ASYNC_CONCURRENCY, lockMs: values.ASYNC_LOCK_MS, maxAttempts: values.ASYNC_MAX_ATTEMPTS },
    webhooks: {
      signingSecret: values.WEBHOOK_SIGNING_SECRET,
      allowedHosts: values.WEBHOOK_ALLOWED_HOSTS,
      // https only in production, unless the operator says otherwise.
      requireHttps: values.WEBHOOK_REQUIRE_HTTPS === undefined ? values.NODE_ENV === 'production' : values.WEBHOOK_REQUIRE_HTTPS === 'true',
      maxAttempts: values.WEBHOOK_MAX_ATTEMPTS,
      backoffMs: values.WEBHOOK_BACKOFF_MS,
      timeoutMs: values.WEBHOOK_TIMEOUT_MS,
    },
    tracing: tracingOf(values),
  };
}

/** The traces endpoint as OpenTelemetry's exporters read it: the per-signal URL as it is, the base URL with /v1/traces. */
function tracingOf(values: z.infer<typeof environmentSchema>): Config['tracing'] {
  if (values.OTEL_SDK_DISABLED === 'true') return undefined;
  const tracesUrl = values.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (values.OTEL_EXPORTER_OTLP_ENDPOINT && `${values.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`);
  return tracesUrl ? { tracesUrl, serviceName: values.OTEL_SERVICE_NAME } : undefined;
}

type RedisValues = Pick<
  z.infer<typeof environmentSchema>,
  'REDIS_URL' | 'REDIS_CLUSTER_NODES' | 'REDIS_SENTINELS' | 'REDIS_SENTINEL_NAME' | 'REDIS_PASSWORD' | 'REDIS_SENTINEL_PASSWORD'
>;

/** The one Redis mode configured, or a ConfigError naming what contradicts or is missing. */
function redisTargetOf(values: RedisValues): RedisTarget | undefined {
  const modes = (['REDIS_URL', 'REDIS_CLUSTER_NODES', 'REDIS_SENTINELS'] as const).filter((variable) => values[variable] !== undefined);
  const problems: string[] = [];
  if (modes.length > 1) {
    problems.push(
      `${modes.join(', ')}: set only one of REDIS_URL (one Redis), REDIS_CLUSTER_NODES (Redis Cluster) and REDIS_SENTINELS (Redis through Sentinel); the replicas would not know which to share`,
    );
  }
  if (values.REDIS_SENTINELS !== undefined && values.REDIS_SENTINEL_NAME === undefined) {
    problems.push('REDIS_SENTINEL_NAME: required with REDIS_SENTINELS (the name of the master group the sentinels monitor)');
  }
  if (values.REDIS_SENTINELS === undefined) {
    for (const variable of ['REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_PASSWORD'] as const) {
      if (values[variable] !== undefined) problems.push(`${variable}: set without REDIS_SENTINELS`);
    }
  }
  if (modes.length === 0 && values.REDIS_PASSWORD !== undefined) {
    problems.push('REDIS_PASSWORD: set without a Redis to use it for (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS)');
  }
  if (problems.length > 0) throw new ConfigError(problems);

  if (values.REDIS_URL !== undefined) return { mode: 'single', url: values.REDIS_URL, password: values.REDIS_PASSWORD };
  if (values.REDIS_CLUSTER_NODES !== undefined) {
    const { nodes, username, password, tls } = values.REDIS_CLUSTER_NODES;
    return { mode: 'cluster', nodes, username, password: password ?? values.REDIS_PASSWORD, tls };
  }
  if (values.REDIS_SENTINELS !== undefined && values.REDIS_SENTINEL_NAME !== undefined) {
    return { mode: 'sentinel', sentinels: values.REDIS_SENTINELS, name: values.REDIS_SENTINEL_NAME, password: values.REDIS_PASSWORD, sentinelPassword: values.REDIS_SENTINEL_PASSWORD };
  }
  return undefined;
}

interface ParsedRedisNodes {
  readonly nodes: readonly RedisNode[];
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly tls: boolean;
}

/**
 * A comma-separated list of `host:port` (port optional, `[::1]:7000` for IPv6), or with `urls` of
 * `redis://[user:password@]host:port` and `rediss://…` too: one scheme and one set of credentials for all.
 * A string is the problem found.
 */
function parseRedisNodes(raw: string, options: { urls: boolean; defaultPort: number }): ParsedRedisNodes | string {
  const entries = raw.split(',').map((entry) => entry.trim()).filter((entry) => entry.length > 0);
  if (entries.length === 0) return 'lists no node';
  const nodes: RedisNode[] = [];
  const schemes = new Set<string>();
  const credentials = new Set<string>();
  let username: string | undefined;
  let password: string | undefined;
  for (const entry of entries) {
    const isUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(entry);
    if (isUrl && !options.urls) return 'each entry is host:port, without a scheme';
    let url: URL;
    try {
      url = new URL(isUrl ? entry : `redis://${entry}`);
    } catch {
      return options.urls ? 'each entry is host:port or a redis:// or rediss:// URL' : 'each entry is host:port';
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return 'each entry is host:port or a redis:// or rediss:// URL';
    if (url.hostname === '' || !['', '/'].includes(url.pathname) || url.search !== '' || url.hash !== '') {
      return options.urls ? 'each entry is host:port or redis[s]://[user:password@]host:port, without a path (Redis Cluster has database 0 only)' : 'each entry is host:port';
    }
    schemes.add(url.protocol);
    if (isUrl) {
      credentials.add(`${url.username}:${url.password}`);
      username = url.username === '' ? undefined : decodeURIComponent(url.username);
      password = url.password === '' ? undefined : decodeURIComponent(url.password);
    }
    nodes.push({ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port === '' ? options.defaultPort : Number(url.port) });
  }
  if (schemes.size > 1) return 'mixes redis:// and rediss://; the nodes of one cluster all use TLS or none does';
  if (credentials.size > 1) return 'gives different credentials to different nodes; a cluster has one set';
  return { nodes, username, password, tls: schemes.has('rediss:') };
}
