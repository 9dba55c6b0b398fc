import { workerCapabilities } from '../../src/dispatch/worker-protocol.js';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kohyaSafetensorsFile, randomVectors, sdxlSafetensorsFile } from '../support/embedding-fixtures.js';
import { CLIENT_API_KEY, EASY_NEGATIVE, FLUX, SD15, startClientStack, type ClientStack } from '../support/client-stack.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { AIR_PATTERN } from '../../src/contracts/air.js';
import { reliabilityProfile, recordResult } from './profile.js';

/**
 * Schemathesis (PyPI) against the committed OpenAPI document and a real gateway process (Redis, a registry on
 * loopback, a fake worker): no answer may be a 500, and every answer must conform to the document — status,
 * content type, headers, body — for generated valid and invalid requests alike. The hooks make generated
 * tasks name the test registry's models, so they reach resolution, the family rules and dispatch.
 *
 * Not checked: positive_data_acceptance. The document cannot say which AIRs exist or which embedding fits
 * which base model; a schema-valid task naming an unknown model is rightly a 400.
 */

const root = fileURLToPath(new URL('../..', import.meta.url));
const SDXL = 'civitai:101055@128078';
const checks = [
  'not_a_server_error',
  'status_code_conformance',
  'content_type_conformance',
  'response_headers_conformance',
  'response_schema_conformance',
  'negative_data_rejection',
  'missing_required_header',
  'unsupported_method',
  'allow_header_conformance',
];

let redis: RedisServer;
let stack: ClientStack;

beforeAll(async () => {
  redis = await startRedisServer();
  stack = await startClientStack({
    env: { REDIS_URL: redis.url, QUEUE_MAX: '1000' },
    // Every capability: a generated task that uses one must reach a worker, not end as noAvailableWorker.
    worker: { models: [{ air: SD15, family: 'sd1', loaded: true }, { air: SDXL, family: 'sdxl' }, { air: FLUX, family: 'flux' }], capabilities: [...workerCapabilities], maxConcurrency: 64 },
  });
  stack.registry.addModelVersion({ modelId: 9001, versionId: 9101, name: 'XL style', type: 'TextualInversion', baseModel: 'SDXL 1.0', files: [{ name: 'xl.safetensors', bytes: sdxlSafetensorsFile(randomVectors(2, 768, 3), randomVectors(2, 1280, 4), 2) }] });
  stack.registry.addModelVersion({ modelId: 9002, versionId: 9102, name: 'Style 15', type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'style.safetensors', bytes: kohyaSafetensorsFile(randomVectors(3, 768, 5), 3, 768) }] });
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await redis?.stop();
});

describe('schemathesis against the committed OpenAPI document', () => {
  it(`finds no 500 and no answer outside the document (${reliabilityProfile.name} profile)`, async () => {
    const port = stack.gateways[0]!.port;
    const args = [
      'run',
      `${root}openapi/clipgate.json`,
      '--url',
      `http://127.0.0.1:${port}`,
      '--checks',
      checks.join(','),
      '--phases',
      'examples,coverage,fuzzing',
      '--max-examples',
      String(reliabilityProfile.schemathesisExamples),
      // One worker: CPython 3.11.7's AST recursion-depth counter is shared between threads (gh-106905, fixed in
      // 3.11.8), and schemathesis's two worker threads tripped it once in CI with a SystemError of its own.
      '--workers',
      '1',
      '--seed',
      '20261201',
      '--header',
      `Authorization: Bearer ${CLIENT_API_KEY}`,
      '--suppress-health-check',
      'all',
      '--request-timeout',
      '30',
    ];
    const airs = { models: [SD15, SDXL, FLUX], embeddings: [EASY_NEGATIVE, 'civitai:9001@9101', 'civitai:9002@9102'], loras: [] };
    const started = Date.now();
    const completedBefore = stack.worker.stats.completed();
    const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile(
        `${root}test/reliability/.venv/bin/schemathesis`,
        args,
        {
          cwd: `${root}test/reliability/schemathesis`,
          env: { PATH: process.env['PATH'] ?? '', SCHEMATHESIS_HOOKS: 'hooks', PYTHONPATH: `${root}test/reliability/schemathesis`, CLIPGATE_AIRS: JSON.stringify(airs), CLIPGATE_AIR_PATTERN: AIR_PATTERN, NO_COLOR: '1' },
          timeout: reliabilityProfile.schemathesisTimeoutMs,
          maxBuffer: 64 * 1024 * 1024,
        },
        (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: `${stdout}\n${stderr}` }),
      );
    });
    const generated = Number(/(\d+) generated/.exec(output)?.[1] ?? NaN);
    const workerJobs = stack.worker.stats.completed() - completedBefore;
    recordResult('schemathesis', { profile: reliabilityProfile.name, generated, workerJobs, exitCode: code, seconds: Math.round((Date.now() - started) / 1000), summary: output.slice(output.lastIndexOf('SUMMARY')) });
    mkdirSync(`${root}test/reliability/.results`, { recursive: true });
    writeFileSync(`${root}test/reliability/.results/schemathesis-${reliabilityProfile.name}.log`, output);
    expect(code, output.slice(-6000)).toBe(0);
    expect(generated).toBeGreaterThan(0);
    // The generated tasks got past validation and resolution to a worker, not only to the first refusal.
    expect(workerJobs).toBeGreaterThan(0);
  }, reliabilityProfile.schemathesisTimeoutMs + 30_000);
});
