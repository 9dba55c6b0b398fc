import { writeFile } from 'node:fs/promises';
import { openApiDocument, openApiPath } from './openapi-document.js';

/** Writes the generated OpenAPI document to openapi/; a test fails when the committed copy drifts. */
await writeFile(openApiPath, await openApiDocument());
process.stdout.write(`wrote ${openApiPath}\n`);
