import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createNoWorkerDispatcher } from '../../src/dispatch/no-worker-dispatcher.js';
import { createModelResolution, type ModelResolution } from '../../src/models/model-resolution.js';

export interface TestGateway {
  readonly app: FastifyInstance;
  readonly resolution: ModelResolution;
  close(): Promise<void>;
}

const quiet = { info: () => undefined, warn: () => undefined };

/** A whole gateway, built the way server.ts builds it, from an environment; no port unless asked. */
export async function startGateway(env: Record<string, string>): Promise<TestGateway> {
  const config = { ...loadConfig(env), logLevel: 'silent' as const };
  const resolution = createModelResolution(config, [], quiet);
  const app = await buildApp({ config, resolver: resolution.resolver, contentStore: resolution.contentStore, dispatcher: createNoWorkerDispatcher() });
  return {
    app,
    resolution,
    async close() {
      await app.close();
      await resolution.close();
    },
  };
}

export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
