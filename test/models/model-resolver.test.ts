import { describe, expect, it } from 'vitest';
import { parseAir, type Air } from '../../src/contracts/air.js';
import { createCatalogueResolver } from '../../src/models/catalogue.js';
import type { ModelRecord } from '../../src/contracts/model-record.js';
import { createModelResolver } from '../../src/models/model-resolver.js';
import type { ModelResolver } from '../../src/contracts/model-resolver.js';
import { testRecords } from '../helper.js';

const airs = (...texts: string[]): Air[] =>
  texts.map((text) => {
    const air = parseAir(text);
    if (!air) throw new Error(text);
    return air;
  });

const inspected: ModelRecord = {
  air: 'civitai:7777@1',
  name: 'Registry Embedding',
  type: 'textualInversion',
  family: 'sd1',
  source: 'registry',
  file: { sha256: 'b'.repeat(64), sizeBytes: 4096, format: 'safetensors', vectors: 2, canonicalSha256: 'a'.repeat(64), canonicalSizeBytes: 4096 },
};

/** The registry's side as a resolver that holds what it knows in memory, like a warm cache. */
const warmRegistry = createCatalogueResolver([inspected]);
/** The same registry before anything is cached: it can only answer the slow way. */
const coldRegistry: ModelResolver = { resolveMany: (list) => warmRegistry.resolveMany(list) };

describe('the model resolver', () => {
  it('answers from memory exactly what the full path answers, when memory has everything', async () => {
    const resolver = createModelResolver(createCatalogueResolver(testRecords), warmRegistry);
    for (const list of [airs('civitai:4384@128713'), airs('civitai:4384@128713', 'civitai:7777@1'), airs('civitai:1000@1', 'civitai:9999@9', 'runware:100@1')]) {
      const fromMemory = resolver.resolveFromMemory?.(list);
      expect(fromMemory).toBeDefined();
      expect(fromMemory).toStrictEqual(await resolver.resolveMany(list));
    }
  });

  it('keeps an embedding the operator listed when the registry does not know it, on both paths', async () => {
    const resolver = createModelResolver(createCatalogueResolver(testRecords), warmRegistry);
    const list = airs('civitai:1000@1');
    expect(resolver.resolveFromMemory?.(list)?.get('civitai:1000@1')).toMatchObject({ kind: 'found', record: { name: 'Test SD15 Embedding' } });
    expect((await resolver.resolveMany(list)).get('civitai:1000@1')).toMatchObject({ kind: 'found', record: { name: 'Test SD15 Embedding' } });
  });

  it('says it cannot answer from memory when an AIR needs a registry that must be asked', async () => {
    const resolver = createModelResolver(createCatalogueResolver(testRecords), coldRegistry);
    expect(resolver.resolveFromMemory?.(airs('civitai:4384@128713'))?.get('civitai:4384@128713')?.kind).toBe('found');
    expect(resolver.resolveFromMemory?.(airs('civitai:4384@128713', 'civitai:7777@1'))).toBeUndefined();
    expect((await resolver.resolveMany(airs('civitai:7777@1'))).get('civitai:7777@1')).toMatchObject({ kind: 'found', record: inspected });
  });
});
