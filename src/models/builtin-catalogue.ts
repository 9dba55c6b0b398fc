import type { ModelRecord } from '../contracts/model-record.js';

/**
 * Well-known models (DESIGN §3), so the common cases resolve with no registry call. An operator's
 * catalogue file (MODEL_CATALOG_PATH) adds to this list and overrides entries with the same AIR.
 */
export const builtinCatalogue: readonly ModelRecord[] = [
  { air: 'runware:100@1', name: 'FLUX.1 [schnell]', type: 'checkpoint', family: 'flux', baseModel: 'Flux.1 S', source: 'builtin' },
  { air: 'runware:101@1', name: 'FLUX.1 [dev]', type: 'checkpoint', family: 'flux', baseModel: 'Flux.1 D', source: 'builtin' },
  { air: 'runware:106@1', name: 'FLUX.1 Kontext [dev]', type: 'checkpoint', family: 'flux', baseModel: 'Flux.1 Kontext', source: 'builtin' },
  { air: 'runware:97@1', name: 'HiDream-I1 Full', type: 'checkpoint', family: 'hidream', baseModel: 'HiDream', source: 'builtin' },
  { air: 'runware:97@2', name: 'HiDream-I1 Dev', type: 'checkpoint', family: 'hidream', baseModel: 'HiDream', source: 'builtin' },
  { air: 'runware:97@3', name: 'HiDream-I1 Fast', type: 'checkpoint', family: 'hidream', baseModel: 'HiDream', source: 'builtin' },
  { air: 'runware:5@1', name: 'Stable Diffusion 3', type: 'checkpoint', family: 'sd3', baseModel: 'SD 3', source: 'builtin' },
  { air: 'runware:108@1', name: 'Qwen-Image', type: 'checkpoint', family: 'qwen', baseModel: 'Qwen', source: 'builtin' },
  { air: 'civitai:101055@128078', name: 'SDXL 1.0 (VAE fix)', type: 'checkpoint', family: 'sdxl', baseModel: 'SDXL 1.0', source: 'builtin' },
  { air: 'civitai:4384@128713', name: 'DreamShaper 8', type: 'checkpoint', family: 'sd1', baseModel: 'SD 1.5', source: 'builtin' },
  // Two of the most used negative embeddings, one per CLIP family.
  { air: 'civitai:7808@9208', name: 'EasyNegative', type: 'textualInversion', family: 'sd1', baseModel: 'SD 1.5', source: 'builtin' },
  { air: 'civitai:118418@134583', name: 'negativeXL', type: 'textualInversion', family: 'sdxl', baseModel: 'SDXL 1.0', source: 'builtin' },
];

/**
 * Hosted providers whose models run on their own infrastructure with their own encoders: every AIR of
 * these sources is a third-party base model, whatever its id.
 */
export const thirdPartySources: ReadonlySet<string> = new Set([
  'recraft',
  'ideogram',
  'openai',
  'google',
  'bfl',
  'bytedance',
]);
