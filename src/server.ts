import { pino } from 'pino';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createGateway } from './gateway.js';
import type { ModelRecord } from './contracts/model-record.js';
import { CatalogueFileError, loadOperatorCatalogue } from './models/operator-catalogue.js';

/** How long in-flight requests get to finish after SIGTERM before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 10_000;

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

  let draining = false;
  // Buffered (4 KiB, or at least every second): at LOG_LEVEL=info every request writes a line, and a write(2)
  // per line on the event loop cost ~7 µs more per request than batched writes (bench/dispatch-overhead.ts
  // --log-level info). pino flushes the buffer when the process exits; a SIGKILL can lose the last second.
  const logStream = pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 1000 });
  const startupLog = pino({ level: config.logLevel }, logStream);
  const { app } = await createGateway(config, operatorRecords, startupLog, { isReady: () => !draining }, logStream);

  if (config.apiKeys.length === 0) {
    app.log.warn('API_KEYS is not set: the API is open to anyone who can reach it. Set API_KEYS before exposing it.');
  }
  app.log.info(
    {
      operatorModels: operatorRecords.length,
      registry: config.registry?.baseUrl ?? 'off',
      sharedCache: config.redisUrl ? 'redis' : 'in-process only',
      workers: config.dispatch.workerUrls.length,
    },
    'model resolution ready',
  );

  const shutdown = (signal: NodeJS.Signals) => {
    if (draining) return;
    draining = true;
    app.log.info({ signal }, 'shutting down: finishing in-flight requests');
    const timer = setTimeout(() => {
      app.log.error('in-flight requests did not finish in time; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    timer.unref();
    app.close().then(
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
