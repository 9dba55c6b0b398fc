import type { Air } from '../contracts/air.js';
import type { ModelResolver, Resolution } from '../contracts/model-resolver.js';

/**
 * The order of sources (DESIGN §4): the catalogue (operator file over built-ins) answers first; Civitai
 * AIRs it does not know — and embeddings it knows only by label, whose file must still be fetched and
 * inspected — go to the cached registry resolver, all in one batch.
 */
export function createModelResolver(catalogue: ModelResolver, registry: ModelResolver | undefined): ModelResolver {
  return {
    async resolveMany(airs, context) {
      const known = await catalogue.resolveMany(airs);
      const needRegistry = registry ? airsForRegistry(airs, known) : [];
      if (!registry || needRegistry.length === 0) return known;
      return merged(known, await registry.resolveMany(needRegistry, context));
    },
    resolveFromMemory(airs) {
      const known = catalogue.resolveFromMemory?.(airs);
      if (!known || !registry) return known;
      const needRegistry = airsForRegistry(airs, known);
      if (needRegistry.length === 0) return known;
      const fetched = registry.resolveFromMemory?.(needRegistry);
      return fetched && merged(known, fetched);
    },
  };
}

/** Civitai AIRs the catalogue did not answer for, and embeddings it knows only by label (no file facts). */
function airsForRegistry(airs: readonly Air[], known: ReadonlyMap<string, Resolution>): Air[] {
  return airs.filter((air) => {
    if (air.source !== 'civitai') return false;
    const resolution = known.get(air.canonical);
    return resolution?.kind !== 'found' || (resolution.record.type === 'textualInversion' && resolution.record.file === undefined);
  });
}

function merged(known: ReadonlyMap<string, Resolution>, fetched: ReadonlyMap<string, Resolution>): ReadonlyMap<string, Resolution> {
  const resolutions = new Map<string, Resolution>(known);
  for (const [key, resolution] of fetched) {
    // An embedding the operator listed, which the registry does not have, stays what the operator said.
    if (resolution.kind === 'notFound' && known.get(key)?.kind === 'found') continue;
    resolutions.set(key, resolution);
  }
  return resolutions;
}
