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
  /** When the record was fetched from its source (ms since the epoch); absent for static catalogues. */
  readonly fetchedAt?: number;
}

export const modelTypeLabels: Record<ModelType, string> = {
  checkpoint: 'a base model (checkpoint)',
  textualInversion: 'an embedding (textual inversion)',
  lora: 'a LoRA',
  other: 'a model of another kind',
};
