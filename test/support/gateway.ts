import { loadConfig } from '../../src/config.js';
import { createGateway, type Gateway } from '../../src/gateway.js';

export type TestGateway = Gateway;

const quiet = { info: () => undefined, warn: () => undefined };

/** A whole gateway, built as server.ts builds it, from an environment; no port unless asked. */
export async function startGateway(env: Record<string, string>): Promise<TestGateway> {
  return createGateway({ ...loadConfig(env), logLevel: 'silent' }, [], quiet);
}

export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
