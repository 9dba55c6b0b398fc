import { describe, expect, it } from 'vitest';
import { AIR_PATTERN, parseAir } from '../../src/contracts/air.js';

describe('parseAir', () => {
  it.each([
    ['civitai:118418@134583', 'civitai:118418@134583'],
    ['runware:100@1', 'runware:100@1'],
    ['recraft:v4.1-pro@0', 'recraft:v4.1-pro@0'],
    ['CivitAI:118418@134583', 'civitai:118418@134583'],
    ['  runware:97@3 ', 'runware:97@3'],
    ['urn:air:sdxl:embedding:civitai:118418@134583', 'civitai:118418@134583'],
    ['urn:air:flux1:checkpoint:civitai:618692@691639', 'civitai:618692@691639'],
    ['openai:gpt-image@1', 'openai:gpt-image@1'],
  ])('reads %s as %s', (text, canonical) => {
    expect(parseAir(text)?.canonical).toBe(canonical);
  });

  it('keeps the URN ecosystem and type as hints only', () => {
    expect(parseAir('urn:air:SDXL:Embedding:civitai:1@2')).toEqual({
      source: 'civitai',
      id: '1',
      version: '2',
      canonical: 'civitai:1@2',
      ecosystemHint: 'sdxl',
      typeHint: 'embedding',
    });
  });

  it.each(['', 'dreamshaper', 'civitai:118418', 'civitai:@1', ':1@1', 'civitai:1@', 'civitai:1@2@3', 'civitai:a b@1', 'urn:air:civitai:1@1', `civitai:${'9'.repeat(400)}@1`])(
    'refuses %j',
    (text) => {
      expect(parseAir(text)).toBeUndefined();
    },
  );

  it('answers a repeated AIR with the same frozen object, and a repeated refusal again with nothing', () => {
    const first = parseAir('CivitAI:4384@128713');
    expect(parseAir('CivitAI:4384@128713')).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(first?.canonical).toBe('civitai:4384@128713');
    expect(parseAir('civitai:4384')).toBeUndefined();
    expect(parseAir('civitai:4384')).toBeUndefined();
  });
});

describe('the AIR pattern of the OpenAPI document', () => {
  it('accepts exactly what parseAir accepts, on generated and odd strings', () => {
    const pattern = new RegExp(AIR_PATTERN);
    const pieces = ['civitai', 'CivitAI', 'urn', 'air', 'sdxl', 'lora', '118418', '134583', 'v4.1-pro', '_x', '-x', '.x', 'ſ', 'K', 'é', ':', '@', ' ', '\t', '', 'a'.repeat(129)];
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    const samples = ['civitai:118418@134583', ' civitai:1@1 ', 'urn:air:sdxl:embedding:civitai:118418@134583', 'URN:AIR:sdxl:lora:civitai:1@2', 'ſivitai:1@1', 'civitai:1@1\n'];
    for (let index = 0; index < 5000; index++) {
      const parts = Array.from({ length: 1 + (next() % 9) }, () => pieces[next() % pieces.length]);
      samples.push(parts.join(''));
    }
    for (const sample of samples) expect(pattern.test(sample), JSON.stringify(sample)).toBe(parseAir(sample) !== undefined);
  });
});
