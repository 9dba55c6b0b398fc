import { readFileSync, writeFileSync } from 'node:fs';
import { errorCatalogue, warningCatalogue } from '../src/errors.js';

/**
 * Rewrites the README's error and warning tables from the catalogue (src/errors.ts), which test/readme.test.ts
 * holds them equal to: run it after changing a code.
 */
const path = new URL('../README.md', import.meta.url);
const lines = readFileSync(path, 'utf8').split('\n');

function replaceTable(heading: string, rows: readonly string[]): void {
  const start = lines.indexOf(`## ${heading}`);
  if (start < 0) throw new Error(`no "## ${heading}" in the README`);
  const first = lines.findIndex((line, index) => index > start && line.startsWith('| `'));
  let end = first;
  while (lines[end]?.startsWith('| `')) end++;
  lines.splice(first, end - first, ...rows);
}

replaceTable('Error codes', Object.entries(errorCatalogue).map(([code, { status, retryable, description }]) => `| \`${code}\` | ${status} | ${retryable ? 'yes' : 'no'} | ${description} |`));
replaceTable('Warning codes', Object.entries(warningCatalogue).map(([code, { description }]) => `| \`${code}\` | ${description} |`));
writeFileSync(path, lines.join('\n'));
console.log('README tables rewritten from src/errors.ts');
