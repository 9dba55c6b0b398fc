import { writeFile } from 'node:fs/promises';
import { openApiDocument, openApiPath } from './openapi-document.js';
import { workerOpenApiDocument, workerOpenApiPath } from './worker-openapi-document.js';

/** Writes the generated OpenAPI documents to openapi/; a test fails when a committed copy drifts. */
await writeFile(openApiPath, await openApiDocument());
await writeFile(workerOpenApiPath, workerOpenApiDocument());
process.stdout.write(`wrote ${openApiPath}\nwrote ${workerOpenApiPath}\n`);
