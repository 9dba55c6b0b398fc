import { fileURLToPath } from 'node:url';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createNoWorkerDispatcher } from '../src/dispatch/no-worker-dispatcher.js';
import { createCatalogueResolver } from '../src/models/catalogue.js';

export const openApiPath = fileURLToPath(new URL('../openapi/clipgate.json', import.meta.url));

/** The public API's OpenAPI document as the code generates it, in its committed text form. */
export async function openApiDocument(): Promise<string> {
  // The document depends only on the schemas, not on the environment: build from the defaults.
  const app = await buildApp({
    config: { ...loadConfig({}), logLevel: 'silent' },
    resolver: createCatalogueResolver(),
    dispatcher: createNoWorkerDispatcher(),
  });
  await app.ready();
  const text = `${JSON.stringify(app.swagger(), null, 2)}\n`;
  await app.close();
  return text;
}
