import type { Family } from '../contracts/families.js';

/**
 * Civitai's `baseModel` labels mapped to families, by their root ecosystem
 * (../shared/reference/civitai-base-models.md): a child ecosystem inherits its root's text encoders, so
 * Pony, Illustrious and NoobAI are SDXL and Pony V7 is AuraFlow. Hosted-only labels (OpenAI, Imagen4, …)
 * are third-party. A label that is not here maps to `unknown`, which takes no embeddings.
 */
const civitaiBaseModels: Record<string, Family> = {
  'SD 1.4': 'sd1',
  'SD 1.5': 'sd1',
  'SD 1.5 LCM': 'sd1',
  'SD 1.5 Hyper': 'sd1',
  'SDXL 0.9': 'sdxl',
  'SDXL 1.0': 'sdxl',
  'SDXL 1.0 LCM': 'sdxl',
  'SDXL Lightning': 'sdxl',
  'SDXL Hyper': 'sdxl',
  'SDXL Turbo': 'sdxl',
  Pony: 'sdxl',
  Illustrious: 'sdxl',
  NoobAI: 'sdxl',
  'SDXL Distilled': 'sdxl-distilled',
  'Playground v2': 'playground',
  'SD 2.0': 'sd2',
  'SD 2.0 768': 'sd2',
  'SD 2.1': 'sd2',
  'SD 2.1 768': 'sd2',
  'SD 2.1 Unclip': 'sd2',
  'SD 3': 'sd3',
  'SD 3.5': 'sd3',
  'SD 3.5 Large': 'sd3',
  'SD 3.5 Large Turbo': 'sd3',
  'SD 3.5 Medium': 'sd3',
  'Flux.1 S': 'flux',
  'Flux.1 D': 'flux',
  'Flux.1 Krea': 'flux',
  'Flux.1 Kontext': 'flux',
  'Flux.2 D': 'flux2',
  'Flux.2 Klein 9B': 'flux2',
  'Flux.2 Klein 9B-base': 'flux2',
  'Flux.2 Klein 4B': 'flux2',
  'Flux.2 Klein 4B-base': 'flux2',
  HiDream: 'hidream',
  'HiDream-O1': 'hidream',
  AuraFlow: 'auraflow',
  'Pony V7': 'auraflow',
  Qwen: 'qwen',
  'Qwen 2': 'qwen',
  'Qwen 3': 'qwen',
  ZImageTurbo: 'zimage',
  ZImageBase: 'zimage',
  Chroma: 'chroma',
  Kolors: 'kolors',
  Lumina: 'lumina',
  'PixArt a': 'pixart',
  'PixArt E': 'pixart',
  'Hunyuan 1': 'hunyuan',
  'Stable Cascade': 'cascade',
  'Wan Image 2.7': 'wan',
  SVD: 'video',
  'SVD XT': 'video',
  'Ideogram 4.0': 'third-party',
  Imagen4: 'third-party',
  'Nano Banana': 'third-party',
  OpenAI: 'third-party',
  Seedream: 'third-party',
  Reve: 'third-party',
  'Krea 2': 'other',
  Anima: 'other',
  Ernie: 'other',
  Boogu: 'other',
  Lens: 'other',
  MageFlow: 'other',
  MAI: 'other',
  ODOR: 'other',
  PolyGen: 'other',
  Tripo: 'other',
  Hunyuan3D: 'other',
  Upscaler: 'other',
  Other: 'unknown',
};

/** Labels compared without case, spaces or punctuation: registries and catalogues spell them loosely. */
function labelKey(label: string): string {
  return label.toLowerCase().replace(/[^a-z0-9]/g, '');
}

const familiesByLabelKey = new Map<string, Family>(
  Object.entries(civitaiBaseModels).map(([label, family]) => [labelKey(label), family]),
);

export function familyOfBaseModel(label: string): Family {
  return familiesByLabelKey.get(labelKey(label)) ?? 'unknown';
}

export const knownBaseModelLabels: readonly string[] = Object.keys(civitaiBaseModels);
