/**
 * Architecture families (DESIGN §3). A family says which text encoder(s) a model conditions on, and so
 * whether a textual inversion can be injected at all: only the CLIP families sd1 and sdxl take them.
 */

export const families = [
  'sd1',
  'sdxl',
  'sd2',
  'sd3',
  'flux',
  'flux2',
  'hidream',
  'auraflow',
  'qwen',
  'zimage',
  'chroma',
  'kolors',
  'lumina',
  'pixart',
  'hunyuan',
  'cascade',
  'playground',
  'sdxl-distilled',
  'wan',
  'video',
  'other',
  'third-party',
  'unknown',
] as const;

export type Family = (typeof families)[number];

export interface FamilyFacts {
  /** Human name used in messages. */
  readonly label: string;
  /** What conditions the model on the prompt; messages quote it so the reason is visible. */
  readonly textEncoders: string;
}

export const familyFacts: Record<Family, FamilyFacts> = {
  sd1: { label: 'Stable Diffusion 1.x', textEncoders: 'CLIP ViT-L (768)' },
  sdxl: { label: 'Stable Diffusion XL', textEncoders: 'CLIP ViT-L (768) + OpenCLIP bigG (1280)' },
  sd2: { label: 'Stable Diffusion 2.x', textEncoders: 'OpenCLIP ViT-H (1024), not served by clipgate' },
  sd3: { label: 'Stable Diffusion 3.x', textEncoders: 'two CLIPs + T5-XXL in an MMDiT' },
  flux: { label: 'FLUX.1', textEncoders: 'T5-XXL (CLIP-L only as a pooled vector)' },
  flux2: { label: 'FLUX.2', textEncoders: 'an LLM text encoder' },
  hidream: { label: 'HiDream', textEncoders: 'T5-XXL + Llama 3.1 (+ CLIPs for pooling)' },
  auraflow: { label: 'AuraFlow', textEncoders: 'Pile-T5' },
  qwen: { label: 'Qwen-Image', textEncoders: 'the Qwen2.5-VL language model' },
  zimage: { label: 'Z-Image', textEncoders: 'the Qwen3 language model' },
  chroma: { label: 'Chroma', textEncoders: 'T5-XXL' },
  kolors: { label: 'Kolors', textEncoders: 'ChatGLM3' },
  lumina: { label: 'Lumina', textEncoders: 'a Gemma language model' },
  pixart: { label: 'PixArt', textEncoders: 'T5-XXL' },
  hunyuan: { label: 'Hunyuan-DiT', textEncoders: 'mT5 + bilingual CLIP' },
  cascade: { label: 'Stable Cascade', textEncoders: 'a staged pipeline without textual-inversion support' },
  playground: { label: 'Playground v2', textEncoders: 'its own fine-tuned encoders, not served by clipgate' },
  'sdxl-distilled': { label: 'distilled SDXL (SSD-1B, Vega)', textEncoders: 'distilled SDXL encoders, not served by clipgate' },
  wan: { label: 'Wan', textEncoders: 'umT5' },
  video: { label: 'a video model', textEncoders: 'no prompt text encoder that takes embeddings' },
  other: { label: 'another architecture', textEncoders: 'an encoder clipgate does not inject into' },
  'third-party': { label: 'a third-party hosted model', textEncoders: "the provider's own, out of reach" },
  unknown: { label: 'an unknown architecture', textEncoders: 'unknown' },
};

/** The families whose CLIP text encoders clipgate's workers can extend with textual inversions. */
export const embeddingFamilyNames = ['sd1', 'sdxl'] as const satisfies readonly Family[];
export type EmbeddingFamily = (typeof embeddingFamilyNames)[number];
export const embeddingFamilies: ReadonlySet<Family> = new Set<Family>(embeddingFamilyNames);

export function acceptsEmbeddings(family: Family): family is EmbeddingFamily {
  return embeddingFamilies.has(family);
}

export function isFamily(value: string): value is Family {
  return (families as readonly string[]).includes(value);
}
