import { pino } from 'pino';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createGateway } from './gateway.js';
import type { ModelRecord } from './contracts/model-record.js';
import { CatalogueFileError, loadOperatorCatalogue } from './models/operator-catalogue.js';

/** Beyond the drain's grace: the time the cancelled work gets to answer, and the close itself. */
const CLOSE_MARGIN_MS = 15_000;

async function main(): Promise<void> {
  let config: Config;
  let operatorRecords: ModelRecord[];
  try {
    config = loadConfig();
    operatorRecords = config.modelCatalogPath ? await loadOperatorCatalogue(config.modelCatalogPath) : [];
  } catch (error) {
    if (error instanceof ConfigError || error instanceof CatalogueFileError) {
      process.stderr.write(`clipgate: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }

  // Buffered (4 KiB, or at least every second): at LOG_LEVEL=info every request writes a line, and a write(2)
  // per line on the event loop cost ~7 µs more per request than batched writes (bench/dispatch-overhead.ts
  // --log-level info). pino flushes the buffer when the process exits; a SIGKILL can lose the last second.
  const logStream = pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 1000 });
  const startupLog = pino({ level: config.logLevel }, logStream);
  const { app, drain } = await createGateway(config, operatorRecords, startupLog, logStream);

  if (config.apiKeys.length === 0) {
    app.log.warn('API_KEYS is not set: the API is open to anyone who can reach it. Set API_KEYS before exposing it.');
  }
  if (config.metrics.enabled && config.metrics.token === undefined && config.environment === 'production') {
    app.log.warn('METRICS_TOKEN is not set: /metrics (worker URLs, load) answers anyone who reaches this port. Set it, or keep /metrics off the public network.');
  }
  app.log.info(
    {
      operatorModels: operatorRecords.length,
      registry: config.registry?.baseUrl ?? 'off',
      sharedCache: config.redis ? `redis (${config.redis.mode})` : 'in-process only',
      workers: config.dispatch.workerUrls.length,
    },
    'model resolution ready',
  );

  // The drain (src/api/drain.ts): not ready at once, still listening, work in flight finishes within
  // DRAIN_GRACE_MS or is stopped and answered retryably; then the app closes.
  const shutdown = (signal: NodeJS.Signals) => {
    if (drain.draining) return;
    drain.begin();
    app.log.info({ signal, inFlight: drain.inFlight, graceMs: config.drainGraceMs }, 'shutting down: not ready any more, finishing work in flight');
    const timer = setTimeout(() => {
      app.log.error('the drain did not end in time; exiting');
      process.exit(1);
    }, config.drainGraceMs + CLOSE_MARGIN_MS);
    timer.unref();
    drain
      .settle(config.drainGraceMs)
      .then((outcome) => {
        if (outcome === 'cancelled') app.log.warn('drain grace passed: work still in flight was stopped and answered with shuttingDown');
        return app.close();
      })
      .then(
        () => process.exit(0),
        (error: unknown) => {
          app.log.error({ err: error }, 'error while closing');
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);

  await app.listen({ port: config.port, host: config.host });
  // Start-up lines (the API_KEYS warning above all) are out by the time the gateway takes requests.
  logStream.flushSync();
}

main().catch((error: unknown) => {
  process.stderr.write(`clipgate: failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
