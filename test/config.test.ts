import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('runs on its embedded defaults with an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      environment: 'development',
      port: 8080,
      host: '0.0.0.0',
      logLevel: 'info',
      apiKeys: [],
      metrics: { enabled: true, token: undefined },
      modelCatalogPath: undefined,
      redis: undefined,
      registry: { baseUrl: 'https://civitai.com', token: undefined, timeoutMs: 10_000 },
      embeddingMaxBytes: 16 * 1024 * 1024,
      modelCache: { ttlSeconds: 3600, staleSeconds: 86_400, negativeTtlSeconds: 300 },
      publicBaseUrl: 'http://127.0.0.1:8080',
      dispatch: {
        workerUrls: [],
        queueMax: 100,
        queueWaitMs: 30_000,
        taskTimeoutMs: 120_000,
        firstByteTimeoutMs: 10_000,
        maxAttempts: 3,
        healthIntervalMs: 2000,
        breakerFailureThreshold: 5,
        breakerCooldownMs: 10_000,
      },
      costPerMegapixelStep: 0.0001,
      limits: { maxTasksPerRequest: 100, maxEmbeddingsPerTask: 10, bodyLimitBytes: 2 * 1024 * 1024 },
    });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      PORT: '9000',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'debug',
      API_KEYS: ' key-aaaaaaaaaaaaaaaa , key-bbbbbbbbbbbbbbbb,',
      MODEL_CATALOG_PATH: '/etc/clipgate/models.json',
      MAX_TASKS_PER_REQUEST: '5',
      MAX_EMBEDDINGS_PER_TASK: '4',
      BODY_LIMIT_BYTES: '65536',
      INLINE_OUTPUT_MAX_MEGAPIXELS: '16',
      REDIS_URL: 'redis://cache.internal:6379/2',
      REDIS_PASSWORD: 'redis-password',
      CIVITAI_BASE_URL: 'http://registry.internal:8000/',
      CIVITAI_TOKEN: 'civitai-token',
      REGISTRY_TIMEOUT_MS: '2500',
      REGISTRY_LOOKUP_DEADLINE_MS: '7000',
      REGISTRY_CONCURRENCY: '6',
      REGISTRY_CONCURRENCY_PER_KEY: '9',
      REGISTRY_LOOKUPS_PER_REQUEST: '12',
      EMBEDDING_MAX_BYTES: '1048576',
      MODEL_CACHE_TTL_SECONDS: '60',
      MODEL_CACHE_STALE_SECONDS: '600',
      MODEL_CACHE_NEGATIVE_TTL_SECONDS: '30',
      PUBLIC_BASE_URL: 'https://gateway.example.com/',
      WORKER_URLS: 'http://gpu-1:9000, http://gpu-2:9000',
      QUEUE_MAX: '7',
      QUEUE_WAIT_MS: '1500',
      TASK_TIMEOUT_MS: '60000',
      TASK_FIRST_BYTE_TIMEOUT_MS: '90000',
      TASK_PROGRESS_TIMEOUT_MS: '15000',
      DISPATCH_MAX_ATTEMPTS: '2',
      WORKER_HEALTH_INTERVAL_MS: '500',
      BREAKER_FAILURE_THRESHOLD: '3',
      BREAKER_COOLDOWN_MS: '2000',
      IMAGE_STORE_DIR: '/var/lib/clipgate/images',
      IMAGE_TTL_SECONDS: '600',
      TASK_LEDGER_TTL_SECONDS: '3600',
      COST_PER_MEGAPIXEL_STEP: '0.5',
      DRAIN_GRACE_MS: '9000',
      HTTP_HEADERS_TIMEOUT_MS: '40000',
      HTTP_REQUEST_TIMEOUT_MS: '20000',
      HTTP_KEEPALIVE_TIMEOUT_MS: '65000',
      HTTP_MAX_CONNECTIONS_PER_IP: '50',
      WS_MAX_TASKS_IN_FLIGHT: '12',
      WS_MAX_SOCKETS_PER_KEY: '3',
      WS_MAX_BUFFERED_BYTES: '1000000',
      WS_IDLE_TIMEOUT_MS: '45000',
      WS_SLOW_READER_TIMEOUT_MS: '5000',
      WS_RESUME_WINDOW_SECONDS: '30',
      SYNC_WAIT_LIMIT_SECONDS: '90',
      RATE_LIMIT_PER_MINUTE: '600',
      SHED_EVENT_LOOP_DELAY_MS: '800',
      SHED_HEAP_USED_BYTES: '1000000000',
      ASYNC_CONCURRENCY: '7',
      ASYNC_LOCK_MS: '4000',
      ASYNC_MAX_ATTEMPTS: '2',
      WEBHOOK_SIGNING_SECRET: 'whsec-0123456789abcdef0123456789abcdef',
      WEBHOOK_ALLOWED_HOSTS: 'Hooks.internal, 10.0.0.0/8',
      WEBHOOK_REQUIRE_HTTPS: 'false',
      WEBHOOK_MAX_ATTEMPTS: '4',
      WEBHOOK_BACKOFF_MS: '250',
      WEBHOOK_TIMEOUT_MS: '3000',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.internal:4318/',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces.internal:4318/custom/traces',
      OTEL_SERVICE_NAME: 'clipgate-eu-1',
      OTEL_SDK_DISABLED: 'false',
      METRICS_ENABLED: 'true',
      METRICS_TOKEN: 'metrics-token-0123456789',
    });
    expect(config).toEqual({
      environment: 'production',
      port: 9000,
      host: '127.0.0.1',
      logLevel: 'debug',
      apiKeys: ['key-aaaaaaaaaaaaaaaa', 'key-bbbbbbbbbbbbbbbb'],
      metrics: { enabled: true, token: 'metrics-token-0123456789' },
      modelCatalogPath: '/etc/clipgate/models.json',
      redis: { mode: 'single', url: 'redis://cache.internal:6379/2', password: 'redis-password' },
      registry: { baseUrl: 'http://registry.internal:8000', token: 'civitai-token', timeoutMs: 2500 },
      // One key's share never beyond the replica's whole.
      registryLimits: { lookupDeadlineMs: 7000, concurrency: 6, concurrencyPerKey: 6, lookupsPerRequest: 12 },
      embeddingMaxBytes: 1_048_576,
      modelCache: { ttlSeconds: 60, staleSeconds: 600, negativeTtlSeconds: 30 },
      publicBaseUrl: 'https://gateway.example.com',
      dispatch: {
        workerUrls: ['http://gpu-1:9000', 'http://gpu-2:9000'],
        queueMax: 7,
        queueWaitMs: 1500,
        taskTimeoutMs: 60_000,
        // Never longer than the whole deadline.
        firstByteTimeoutMs: 60_000,
        progressTimeoutMs: 15_000,
        maxAttempts: 2,
        healthIntervalMs: 500,
        breakerFailureThreshold: 3,
        breakerCooldownMs: 2000,
      },
      imageStoreDir: '/var/lib/clipgate/images',
      imageTtlSeconds: 600,
      taskLedgerTtlSeconds: 3600,
      costPerMegapixelStep: 0.5,
      limits: { maxTasksPerRequest: 5, maxEmbeddingsPerTask: 4, bodyLimitBytes: 65536, inlineOutputMaxMegapixels: 16 },
      drainGraceMs: 9000,
      // The headers' deadline never beyond the whole request's.
      http: { headersTimeoutMs: 20_000, requestTimeoutMs: 20_000, keepAliveTimeoutMs: 65_000, maxConnectionsPerIp: 50 },
      websocket: { maxTasksInFlight: 12, maxSocketsPerKey: 3, maxBufferedBytes: 1_000_000, idleMs: 45_000, slowReaderMs: 5000, resumeWindowMs: 30_000 },
      syncWaitLimitMs: 90_000,
      rateLimitPerMinute: 600,
      shedding: { maxEventLoopDelayMs: 800, maxHeapUsedBytes: 1_000_000_000 },
      async: { concurrency: 7, lockMs: 4000, maxAttempts: 2 },
      webhooks: {
        signingSecret: 'whsec-0123456789abcdef0123456789abcdef',
        allowedHosts: ['hooks.internal', '10.0.0.0/8'],
        requireHttps: false,
        maxAttempts: 4,
        backoffMs: 250,
        timeoutMs: 3000,
      },
      // The per-signal endpoint wins over the base one, and is taken as it is.
      tracing: { tracesUrl: 'http://traces.internal:4318/custom/traces', serviceName: 'clipgate-eu-1' },
    });
  });

  it('traces only when an OTLP endpoint is set, and not when OTEL_SDK_DISABLED says so', () => {
    expect(loadConfig({}).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_SERVICE_NAME: 'lonely' }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).tracing).toEqual({ tracesUrl: 'http://collector:4318/v1/traces', serviceName: 'clipgate' });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }).tracing).toBeUndefined();
    expect(problemsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://collector:4317' })).toEqual([expect.stringContaining('OTEL_EXPORTER_OTLP_ENDPOINT')]);
  });

  it('asks webhooks for https in production unless told otherwise, and never echoes the signing secret', () => {
    const production = { NODE_ENV: 'production', API_KEYS: 'a-key-0123456789abcdef' };
    expect(loadConfig(production).webhooks.requireHttps).toBe(true);
    expect(loadConfig({ ...production, WEBHOOK_REQUIRE_HTTPS: 'false' }).webhooks.requireHttps).toBe(false);
    expect(loadConfig({}).webhooks.requireHttps).toBe(false);
    expect(() => loadConfig({ WEBHOOK_SIGNING_SECRET: 'short-secret' })).toThrow(/WEBHOOK_SIGNING_SECRET: must be at least 32 characters/);
    expect(() => loadConfig({ WEBHOOK_SIGNING_SECRET: 'short-secret' })).not.toThrow(/short-secret/);
  });

  it('refuses a worker URL that is not http(s), has a path, or is listed twice', () => {
    expect(problemsOf({ WORKER_URLS: 'http://ok:1,ftp://nope' })).toEqual([expect.stringContaining('WORKER_URLS')]);
    expect(problemsOf({ WORKER_URLS: 'http://lb:80/gpu1' })).toEqual([expect.stringContaining('without a path')]);
    expect(problemsOf({ WORKER_URLS: 'http://gpu:9000,http://gpu:9000/' })).toEqual([expect.stringContaining('listed once')]);
  });

  it('switches the registry off with CIVITAI_BASE_URL=off', () => {
    expect(loadConfig({ CIVITAI_BASE_URL: 'off' }).registry).toBeUndefined();
  });

  it('never echoes secrets in its messages', () => {
    const problems = problemsOf({ REDIS_URL: 'http://user:hunter2@cache' });
    expect(problems).toEqual([expect.stringContaining('REDIS_URL')]);
    expect(problems.join()).not.toContain('hunter2');
  });

  it('reads a Redis Cluster from its seed nodes, with one set of credentials', () => {
    expect(loadConfig({ REDIS_CLUSTER_NODES: ' 10.0.0.1:7000, redis-b:7001 ,[::1]:7002,redis-d', REDIS_PASSWORD: 'pw' }).redis).toEqual({
      mode: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: 'redis-b', port: 7001 },
        { host: '::1', port: 7002 },
        { host: 'redis-d', port: 6379 },
      ],
      username: undefined,
      password: 'pw',
      tls: false,
    });
    // A password in the URLs wins over REDIS_PASSWORD, as it does in REDIS_URL.
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'rediss://app:s%40cret@a:7000,rediss://app:s%40cret@b:7000', REDIS_PASSWORD: 'other' }).redis).toEqual({
      mode: 'cluster',
      nodes: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 7000 },
      ],
      username: 'app',
      password: 's@cret',
      tls: true,
    });
  });

  it('reads Redis through Sentinel: the sentinels, the master group, and the passwords of each', () => {
    expect(loadConfig({ REDIS_SENTINELS: 'sentinel-1:26379,sentinel-2', REDIS_SENTINEL_NAME: 'clipgate', REDIS_PASSWORD: 'pw', REDIS_SENTINEL_PASSWORD: 'spw' }).redis).toEqual({
      mode: 'sentinel',
      sentinels: [
        { host: 'sentinel-1', port: 26379 },
        { host: 'sentinel-2', port: 26379 },
      ],
      name: 'clipgate',
      password: 'pw',
      sentinelPassword: 'spw',
    });
  });

  it('refuses contradictory or incomplete Redis configuration, naming the variables', () => {
    expect(problemsOf({ REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: 'b:7000' })).toEqual([expect.stringMatching(/^REDIS_URL, REDIS_CLUSTER_NODES: set only one of/)]);
    expect(problemsOf({ REDIS_CLUSTER_NODES: 'b:7000', REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm' })).toEqual([expect.stringContaining('REDIS_CLUSTER_NODES, REDIS_SENTINELS: set only one')]);
    expect(problemsOf({ REDIS_SENTINELS: 's:26379' })).toEqual([expect.stringContaining('REDIS_SENTINEL_NAME: required with REDIS_SENTINELS')]);
    expect(problemsOf({ REDIS_SENTINEL_NAME: 'm', REDIS_URL: 'redis://a' })).toEqual(['REDIS_SENTINEL_NAME: set without REDIS_SENTINELS']);
    expect(problemsOf({ REDIS_PASSWORD: 'pw' })).toEqual([expect.stringContaining('REDIS_PASSWORD: set without a Redis')]);
    expect(problemsOf({ REDIS_CLUSTER_NODES: 'a:7000/2' })).toEqual([expect.stringContaining('database 0 only')]);
    expect(problemsOf({ REDIS_CLUSTER_NODES: 'a:notaport' })).toEqual([expect.stringContaining('REDIS_CLUSTER_NODES: each entry is host:port')]);
    expect(problemsOf({ REDIS_CLUSTER_NODES: 'redis://a:7000,rediss://b:7000' })).toEqual([expect.stringContaining('mixes redis:// and rediss://')]);
    expect(problemsOf({ REDIS_CLUSTER_NODES: ' , ' })).toEqual([expect.stringContaining('lists no node')]);
    expect(problemsOf({ REDIS_SENTINELS: 'redis://s:26379', REDIS_SENTINEL_NAME: 'm' })).toEqual(['REDIS_SENTINELS: each entry is host:port, without a scheme (got "redis://s:26379")']);
    // Passwords in cluster URLs are never echoed.
    const problems = problemsOf({ REDIS_CLUSTER_NODES: 'redis://u:hunter2@a:7000/5' });
    expect(problems).toEqual([expect.stringContaining('REDIS_CLUSTER_NODES')]);
    expect(problems.join()).not.toContain('hunter2');
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ PORT: '', LOG_LEVEL: '' }).port).toBe(8080);
  });

  it('names every bad variable, with what it got', () => {
    const problems = problemsOf({ PORT: 'eighty', LOG_LEVEL: 'loud', MAX_TASKS_PER_REQUEST: '0', BODY_LIMIT_BYTES: '1.5', NODE_ENV: 'staging' });
    expect(problems).toHaveLength(5);
    for (const variable of ['PORT', 'LOG_LEVEL', 'MAX_TASKS_PER_REQUEST', 'BODY_LIMIT_BYTES', 'NODE_ENV']) {
      expect(problems.some((problem) => problem.startsWith(`${variable}:`)), variable).toBe(true);
    }
    expect(problems.find((problem) => problem.startsWith('PORT'))).toContain('"eighty"');
  });

  it('refuses a METRICS_TOKEN that would protect nothing, without echoing it', () => {
    expect(() => loadConfig({ METRICS_ENABLED: 'false', METRICS_TOKEN: 'metrics-token-0123456789' })).toThrow(/METRICS_TOKEN: set while METRICS_ENABLED=false/);
    expect(() => loadConfig({ METRICS_ENABLED: 'false', METRICS_TOKEN: 'metrics-token-0123456789' })).not.toThrow(/metrics-token-0123456789/);
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN: must be at least 16 characters$/m);
  });

  it('refuses to start in production without API keys', () => {
    expect(problemsOf({ NODE_ENV: 'production' })).toEqual([expect.stringContaining('API_KEYS: required when NODE_ENV=production')]);
  });

  it('refuses short API keys without echoing them', () => {
    const problems = problemsOf({ API_KEYS: 'short-secret' });
    expect(problems).toEqual([expect.stringContaining('API_KEYS')]);
    expect(problems.join()).not.toContain('short-secret');
  });
});
