import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The reliability suite's two sizes: `short` in CI (every case, small counts; minutes), `long` by
 * `RELIABILITY_PROFILE=long npm run test:reliability` (the figures docs/reliability.md reports).
 */
export interface ReliabilityProfile {
  readonly name: 'short' | 'long';
  readonly schemathesisExamples: number;
  readonly schemathesisTimeoutMs: number;
  /** Requests sent in each fault-matrix case and the SIGTERM case. */
  readonly requestsPerCase: number;
  /** How long the soak runs. */
  readonly soakMs: number;
}

const profiles: Record<ReliabilityProfile['name'], ReliabilityProfile> = {
  short: { name: 'short', schemathesisExamples: 100, schemathesisTimeoutMs: 240_000, requestsPerCase: 40, soakMs: 20_000 },
  long: { name: 'long', schemathesisExamples: 1000, schemathesisTimeoutMs: 1_800_000, requestsPerCase: 400, soakMs: 180_000 },
};

export const reliabilityProfile: ReliabilityProfile = profiles[process.env['RELIABILITY_PROFILE'] === 'long' ? 'long' : 'short'];

const results = fileURLToPath(new URL('./.results/', import.meta.url));

/**
 * Keeps a case's figures in test/reliability/.results/{profile}/{case}.json, which docs/reliability.md is
 * written from: one file per case, since the suite's files run in parallel.
 */
export function recordResult(name: string, figures: Record<string, unknown>): void {
  const folder = `${results}${reliabilityProfile.name}/`;
  mkdirSync(folder, { recursive: true });
  const file = `${folder}${name.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').toLowerCase()}.json`;
  writeFileSync(file, `${JSON.stringify({ case: name, ...figures, at: new Date().toISOString() }, null, 2)}\n`);
}
