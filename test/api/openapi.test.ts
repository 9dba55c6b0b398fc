import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { errorCatalogue } from '../../src/errors.js';
import { openApiDocument, openApiPath } from '../../scripts/openapi-document.js';
import { buildTestApp } from '../helper.js';

describe('OpenAPI document', () => {
  it('is committed exactly as the code generates it (run `npm run openapi` after changing a schema)', async () => {
    const committed = await readFile(openApiPath, 'utf8');
    expect(committed).toBe(await openApiDocument());
  });

  it('is OpenAPI 3.1, describes the task endpoint from the zod schemas and lists every error code', async () => {
    const document = JSON.parse(await openApiDocument()) as {
      openapi: string;
      paths: Record<string, unknown>;
      components: { schemas: Record<string, { properties?: Record<string, { enum?: string[]; minimum?: number; maximum?: number }> }> };
    };
    expect(document.openapi).toBe('3.1.0');
    expect(Object.keys(document.paths)).toEqual(expect.arrayContaining(['/v1/tasks', '/health/live', '/health/ready']));
    const task = document.components.schemas['ImageInferenceTaskInput']?.properties ?? {};
    expect(task['width']).toMatchObject({ minimum: 128, maximum: 2048 });
    expect(Object.keys(task)).toContain('embeddings');
    const errorCodes = document.components.schemas['Error']?.properties?.['code']?.enum;
    expect(errorCodes?.sort()).toEqual(Object.keys(errorCatalogue).sort());
  });

  it('is served at /openapi.json and browsable at /docs', async () => {
    const app = await buildTestApp();
    const json = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(json.statusCode).toBe(200);
    expect(json.json()).toMatchObject({ openapi: '3.1.0', info: { title: 'clipgate' } });
    const docs = await app.inject({ method: 'GET', url: '/docs/' });
    expect(docs.statusCode).toBe(200);
    expect(docs.headers['content-type']).toContain('text/html');
  });
});
