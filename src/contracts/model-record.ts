import type { Family } from './families.js';

export const modelTypes = ['checkpoint', 'textualInversion', 'lora', 'other'] as const;
export type ModelType = (typeof modelTypes)[number];

/** Where a record came from. */
export type RecordSource = 'builtin' | 'operator' | 'provider' | 'registry';

/** The embedding file formats clipgate reads (A1111 `.pt`, diffusers `.bin`, kohya / SDXL `.safetensors`). */
export const embeddingFileFormats = ['safetensors', 'a1111-pt', 'diffusers-bin'] as const;
export type EmbeddingFileFormat = (typeof embeddingFileFormats)[number];

/** What the gateway learned from an embedding's file: the facts a worker needs to fetch and inject it. */
export interface EmbeddingFileFacts {
  /** SHA-256 of the file as published. */
  readonly sha256: string;
  readonly sizeBytes: number;
  readonly format: EmbeddingFileFormat;
  /** Number of token vectors per text encoder. */
  readonly vectors: number;
  /** SHA-256 of the canonical safetensors copy workers download. */
  readonly canonicalSha256: string;
  readonly canonicalSizeBytes: number;
  /** The registry's family label when it disagreed with the file; the file's shapes win. */
  readonly labelledFamily?: Family;
}

/** What the gateway read from a LoRA's file header: the facts a worker needs to fetch, verify and load it. */
export interface LoraFileFacts {
  /** SHA-256 of the file as published (the registry's): the worker verifies its download against it. */
  readonly sha256: string;
  readonly sizeBytes: number;
  readonly format: 'safetensors';
  /** The registry's download URL: workers fetch the file there, with their own registry credentials. */
  readonly downloadUrl: string;
  /** Key naming: kohya (`lora_unet_…`) or PEFT / diffusers (`unet.….lora_A.weight`). */
  readonly naming: 'kohya' | 'peft';
  /** What in the header decided the family, for messages. */
  readonly evidence: string;
  /** The registry's family label when the file says otherwise; the file wins. */
  readonly labelledFamily?: Family;
}

/** What clipgate knows about one model, whatever the source. */
export interface ModelRecord {
  /** Canonical short AIR (`source:id@version`). */
  readonly air: string;
  readonly name: string;
  readonly type: ModelType;
  readonly family: Family;
  /** The registry's base-model label (`SDXL 1.0`, `Pony`, …) where one is known. */
  readonly baseModel?: string;
  readonly source: RecordSource;
  readonly trainedWords?: readonly string[];
  /** Present for embeddings resolved through the registry: their inspected, canonicalised file. */
  readonly file?: EmbeddingFileFacts;
  /** Present for LoRAs resolved through the registry: their file, read from its header. */
  readonly loraFile?: LoraFileFacts;
  /** When the record was fetched from its source (ms since the epoch); absent for static catalogues. */
  readonly fetchedAt?: number;
}

export const modelTypeLabels: Record<ModelType, string> = {
  checkpoint: 'a base model (checkpoint)',
  textualInversion: 'an embedding (textual inversion)',
  lora: 'a LoRA',
  other: 'a model of another kind',
};
