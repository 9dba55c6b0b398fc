import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAir } from '../../src/contracts/air.js';
import { createCatalogueResolver } from '../../src/models/catalogue.js';
import { CatalogueFileError, loadOperatorCatalogue } from '../../src/models/operator-catalogue.js';

async function catalogueFile(content: string): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'clipgate-catalogue-'));
  const path = join(directory, 'models.json');
  await writeFile(path, content);
  return path;
}

describe('operator catalogue file', () => {
  it('loads entries, taking the family from the entry or its baseModel label', async () => {
    const path = await catalogueFile(
      JSON.stringify({
        models: [
          { air: 'urn:air:sdxl:checkpoint:civitai:133005@357609', name: 'Juggernaut XL', type: 'checkpoint', baseModel: 'SDXL 1.0' },
          { air: 'civitai:5@5', type: 'textualInversion', baseModel: 'Pony' },
          { air: 'myfleet:anime@2', type: 'checkpoint', family: 'sd1' },
        ],
      }),
    );
    const records = await loadOperatorCatalogue(path);
    expect(records).toEqual([
      { air: 'civitai:133005@357609', name: 'Juggernaut XL', type: 'checkpoint', family: 'sdxl', baseModel: 'SDXL 1.0', source: 'operator' },
      { air: 'civitai:5@5', name: 'civitai:5@5', type: 'textualInversion', family: 'sdxl', baseModel: 'Pony', source: 'operator' },
      { air: 'myfleet:anime@2', name: 'myfleet:anime@2', type: 'checkpoint', family: 'sd1', source: 'operator' },
    ]);
  });

  it('overrides a built-in entry with the same AIR', async () => {
    const path = await catalogueFile(JSON.stringify({ models: [{ air: 'runware:101@1', name: 'Our FLUX dev', type: 'checkpoint', family: 'flux' }] }));
    const resolver = createCatalogueResolver(await loadOperatorCatalogue(path));
    const air = parseAir('runware:101@1');
    if (!air) throw new Error('bad AIR');
    const resolution = (await resolver.resolveMany([air])).get('runware:101@1');
    expect(resolution).toMatchObject({ kind: 'found', record: { name: 'Our FLUX dev', source: 'operator' } });
  });

  it.each([
    ['not JSON', '{models: [', 'is not valid JSON'],
    ['no models list', '{"model": []}', 'models'],
    ['a bad type', '{"models": [{"air": "civitai:1@1", "type": "vae", "family": "sd1"}]}', 'models.0.type'],
    ['no family or label', '{"models": [{"air": "civitai:1@1", "type": "lora"}]}', 'give "family" or "baseModel"'],
    ['a bad AIR', '{"models": [{"air": "nope", "type": "lora", "family": "sd1"}]}', 'models.0.air "nope" is not an AIR'],
  ])('refuses a file with %s, saying where', async (_name, content, expected) => {
    const path = await catalogueFile(content);
    await expect(loadOperatorCatalogue(path)).rejects.toThrow(CatalogueFileError);
    await expect(loadOperatorCatalogue(path)).rejects.toThrow(expected);
  });

  it('refuses a file that cannot be read', async () => {
    await expect(loadOperatorCatalogue('/nonexistent/models.json')).rejects.toThrow('cannot read /nonexistent/models.json');
  });
});

describe('catalogue resolver', () => {
  it('treats every model of a hosted provider as a third-party base model', async () => {
    const resolver = createCatalogueResolver();
    const airs = ['recraft:v4.1-pro@0', 'bfl:flux-pro@1', 'google:imagen-4@0', 'bytedance:seedream@3', 'ideogram:v3@0'].map((text) => parseAir(text));
    const resolutions = await resolver.resolveMany(airs.filter((air) => air !== undefined));
    for (const resolution of resolutions.values()) {
      expect(resolution).toMatchObject({ kind: 'found', record: { family: 'third-party', type: 'checkpoint' } });
    }
    expect(resolutions.size).toBe(5);
  });
});
