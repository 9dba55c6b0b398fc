import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { batchKey } from '../../src/dispatch/batch-key.js';
import { jobRequestSchema, type JobRequest } from '../../src/dispatch/worker-protocol.js';

interface Cases {
  readonly base: JobRequest;
  readonly cases: readonly { readonly name: string; readonly change: Partial<JobRequest>; readonly sameBatch: boolean }[];
  readonly loraCases: { readonly base: Pick<JobRequest, 'loras'>; readonly cases: readonly { readonly name: string; readonly loras: JobRequest['loras']; readonly sameBatch: boolean }[] };
}

// The rule the reference worker shares (worker/tests/test_batching.py reads the same file).
const fixture = JSON.parse(readFileSync(new URL('../../openapi/batch-key-cases.json', import.meta.url), 'utf8')) as Cases;

describe('batchKey', () => {
  it('is valid protocol in every case of the shared fixture', () => {
    for (const { change } of fixture.cases) expect(jobRequestSchema.safeParse({ ...fixture.base, ...change }).success).toBe(true);
  });

  for (const { name, change, sameBatch } of fixture.cases) {
    it(`${sameBatch ? 'batches' : 'does not batch'} a job with ${name}`, () => {
      expect(batchKey({ ...fixture.base, ...change }) === batchKey(fixture.base)).toBe(sameBatch);
    });
  }

  for (const { name, loras, sameBatch } of fixture.loraCases.cases) {
    it(`${sameBatch ? 'batches' : 'does not batch'} LoRA jobs with ${name}`, () => {
      const base = { ...fixture.base, ...fixture.loraCases.base };
      expect(batchKey({ ...base, loras }) === batchKey(base)).toBe(sameBatch);
    });
  }
});
