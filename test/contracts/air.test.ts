import { describe, expect, it } from 'vitest';
import { parseAir } from '../../src/contracts/air.js';

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
