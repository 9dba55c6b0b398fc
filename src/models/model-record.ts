import type { Family } from './families.js';

export const modelTypes = ['checkpoint', 'textualInversion', 'lora', 'other'] as const;
export type ModelType = (typeof modelTypes)[number];

/** Where a record came from; later sources (the registry) are added by the metadata stage. */
export type RecordSource = 'builtin' | 'operator' | 'provider';

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
}

export const modelTypeLabels: Record<ModelType, string> = {
  checkpoint: 'a base model (checkpoint)',
  textualInversion: 'an embedding (textual inversion)',
  lora: 'a LoRA',
  other: 'a model of another kind',
};
