import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorCatalogue, warningCatalogue } from '../src/errors.js';
import type { FastifyInstance } from 'fastify';
import { kohyaSafetensorsFile, randomVectors } from './support/embedding-fixtures.js';
import { startFakeRegistry } from './support/fake-registry.js';
import { startGateway } from './support/gateway.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

function tableAfter(heading: string): string[][] {
  const section = readme.split(`## ${heading}`)[1]?.split('\n## ')[0] ?? '';
  return section
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()));
}

describe('README', () => {
  it('lists exactly the error catalogue, with status and retryability', () => {
    const rows = tableAfter('Error codes').map(([code, status, retryable, description]) => [code, status, retryable, description]);
    const expected = Object.entries(errorCatalogue).map(([code, definition]) => [
      `\`${code}\``,
      String(definition.status),
      definition.retryable ? 'yes' : 'no',
      definition.description,
    ]);
    expect(rows).toEqual(expected);
  });

  it('lists exactly the warning catalogue', () => {
    const rows = tableAfter('Warning codes');
    expect(rows).toEqual(Object.entries(warningCatalogue).map(([code, definition]) => [`\`${code}\``, definition.description]));
  });

  it('documents every configuration variable', () => {
    const documented = tableAfter('Configuration').map(([variable]) => variable?.replaceAll('`', ''));
    const source = readFileSync(new URL('../src/config.ts', import.meta.url), 'utf8');
    const read = [...source.matchAll(/^ {2}([A-Z_]+): /gm)].map((match) => match[1]);
    expect(documented.sort()).toEqual(read.sort());
  });

  it('shows curl examples that answer as the README says', async () => {
    const examples = [...readme.matchAll(/-d '(\[[\s\S]*?\])'\n```\n<!-- expect: (\d{3}) (\w+) -->/g)];
    expect(examples.length).toBeGreaterThanOrEqual(2);
    // The README's examples run on the embedded defaults (no API keys, no Redis) against a registry that
    // serves EasyNegative as Civitai does: an SD 1.5 safetensors embedding.
    const registry = await startFakeRegistry();
    registry.addModelVersion({ modelId: 7808, versionId: 9208, name: 'EasyNegative', type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'easynegative.safetensors', bytes: kohyaSafetensorsFile(randomVectors(8, 768, 1), 8, 768) }] });
    const gateway = await startGateway({ CIVITAI_BASE_URL: registry.url });
    const app = gateway.app;
    try {
      await checkExamples(app, examples);
    } finally {
      await gateway.close();
      await registry.close();
    }
  });
});

async function checkExamples(app: FastifyInstance, examples: RegExpExecArray[]): Promise<void> {
  for (const [, payload, status, code] of examples) {
    const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload });
    expect(response.statusCode, payload).toBe(Number(status));
    expect(response.json().errors[0].code).toBe(code);
    expect(readme).toContain(response.body);
  }
}
