import { describe, expect, it } from 'vitest';
import { familyOfBaseModel, knownBaseModelLabels } from '../../src/models/base-models.js';
import { acceptsEmbeddings } from '../../src/contracts/families.js';

describe('familyOfBaseModel', () => {
  it.each([
    ['SD 1.4', 'sd1'],
    ['SD 1.5', 'sd1'],
    ['SD 1.5 LCM', 'sd1'],
    ['SD 1.5 Hyper', 'sd1'],
    ['SDXL 1.0', 'sdxl'],
    ['SDXL Lightning', 'sdxl'],
    ['SDXL Hyper', 'sdxl'],
    ['SDXL Turbo', 'sdxl'],
    ['Pony', 'sdxl'],
    ['Illustrious', 'sdxl'],
    ['NoobAI', 'sdxl'],
    ['SD 2.1', 'sd2'],
    ['Flux.1 D', 'flux'],
    ['Flux.1 S', 'flux'],
    ['Flux.1 Kontext', 'flux'],
    ['Flux.1 Krea', 'flux'],
    ['Flux.2 Klein 4B', 'flux2'],
    ['HiDream', 'hidream'],
    ['SD 3.5 Large', 'sd3'],
    ['Pony V7', 'auraflow'],
    ['Qwen', 'qwen'],
    ['ZImageTurbo', 'zimage'],
    ['OpenAI', 'third-party'],
    ['Other', 'unknown'],
    ['Something New 9', 'unknown'],
  ])('%s → %s', (label, family) => {
    expect(familyOfBaseModel(label)).toBe(family);
  });

  it('matches labels loosely, as registries spell them', () => {
    expect(familyOfBaseModel('sd 1.5')).toBe('sd1');
    expect(familyOfBaseModel('SDXL1.0')).toBe('sdxl');
    expect(familyOfBaseModel('flux.1 d')).toBe('flux');
  });

  it('lets embeddings in only for the SD 1.x and SDXL labels', () => {
    const accepting = knownBaseModelLabels.filter((label) => acceptsEmbeddings(familyOfBaseModel(label)));
    expect(accepting.sort()).toEqual(
      ['Illustrious', 'NoobAI', 'Pony', 'SD 1.4', 'SD 1.5', 'SD 1.5 Hyper', 'SD 1.5 LCM', 'SDXL 0.9', 'SDXL 1.0', 'SDXL 1.0 LCM', 'SDXL Hyper', 'SDXL Lightning', 'SDXL Turbo'].sort(),
    );
  });
});
