import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createDispatchStage, type DispatchStage } from '../../src/dispatch/create-dispatch.js';
import { createModelResolution, type ModelResolution } from '../../src/models/model-resolution.js';

export interface TestGateway {
  readonly app: FastifyInstance;
  readonly resolution: ModelResolution;
  readonly dispatch: DispatchStage;
  close(): Promise<void>;
}

const quiet = { info: () => undefined, warn: () => undefined };

/** A whole gateway, built the way server.ts builds it, from an environment; no port unless asked. */
export async function startGateway(env: Record<string, string>): Promise<TestGateway> {
  const config = { ...loadConfig(env), logLevel: 'silent' as const };
  const resolution = createModelResolution(config, [], quiet);
  const dispatch = createDispatchStage(config, quiet);
  const app = await buildApp({
    config,
    resolver: resolution.resolver,
    contentStore: resolution.contentStore,
    dispatcher: dispatch.dispatcher,
    imageStore: dispatch.imageStore,
  });
  return {
    app,
    resolution,
    dispatch,
    async close() {
      await app.close();
      await dispatch.close();
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
