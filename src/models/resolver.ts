import type { Air } from './air.js';
import type { ModelRecord } from './model-record.js';

export type Resolution = { readonly kind: 'found'; readonly record: ModelRecord } | { readonly kind: 'notFound' };

/**
 * Answers "what is this model?" for every AIR of a request at once, so a resolver backed by a cache or a
 * registry can batch its lookups into one round trip. Keys of the result are canonical AIRs.
 */
export interface ModelResolver {
  resolveMany(airs: readonly Air[]): Promise<ReadonlyMap<string, Resolution>>;
}
