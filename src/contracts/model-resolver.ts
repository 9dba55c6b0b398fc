import type { ErrorCode } from '../errors.js';
import type { Air } from './air.js';
import type { ModelRecord } from './model-record.js';

/**
 * What resolving an AIR can end in:
 * - found: the record (possibly stale, when the source is down and a cached copy is all there is);
 * - notFound: no such model at any source;
 * - rejected: the model exists but cannot be used (its file is unsafe, unparseable, too large, …);
 * - unavailable: the source could not be asked and nothing is cached; worth retrying;
 * - deferred: not looked up, because the request had spent its share of lookups at the source; worth retrying.
 */
export type Resolution =
  | { readonly kind: 'found'; readonly record: ModelRecord }
  | { readonly kind: 'notFound' }
  | { readonly kind: 'rejected'; readonly code: ErrorCode; readonly message: string }
  | { readonly kind: 'unavailable'; readonly message: string }
  | { readonly kind: 'deferred'; readonly budget: number };

/**
 * Who asks, so that one client cannot take the source's whole capacity: each request may start at most
 * `sourceLookups` lookups at the source (the rest are deferred), and each principal's run a few at a time.
 */
export interface LookupContext {
  readonly principal?: string;
  readonly sourceLookups?: number;
}

/**
 * Answers "what is this model?" for every AIR of a request at once, so a resolver backed by a cache or a
 * registry can batch its lookups into one round trip. Keys of the result are canonical AIRs.
 */
export interface ModelResolver {
  resolveMany(airs: readonly Air[], context?: LookupContext): Promise<ReadonlyMap<string, Resolution>>;
  /**
   * resolveMany's answer synchronously, when memory alone holds a current one for every AIR; otherwise
   * undefined, and resolveMany must be asked. Validation asks this first: a warm request then waits on no
   * promise at all. Never starts a lookup, and never answers from a stale entry (that needs a refresh).
   */
  resolveFromMemory?(airs: readonly Air[]): ReadonlyMap<string, Resolution> | undefined;
}
