import type { ModelResolver, Resolution } from './resolver.js';

/**
 * The order of sources (DESIGN §4): the catalogue (operator file over built-ins) answers first; Civitai
 * AIRs it does not know — and embeddings it knows only by label, whose file must still be fetched and
 * inspected — go to the cached registry resolver, all in one batch.
 */
export function createModelResolver(catalogue: ModelResolver, registry: ModelResolver | undefined): ModelResolver {
  return {
    async resolveMany(airs) {
      const known = await catalogue.resolveMany(airs);
      if (!registry) return known;
      const needRegistry = airs.filter((air) => {
        if (air.source !== 'civitai') return false;
        const resolution = known.get(air.canonical);
        return resolution?.kind !== 'found' || (resolution.record.type === 'textualInversion' && resolution.record.file === undefined);
      });
      if (needRegistry.length === 0) return known;
      const fetched = await registry.resolveMany(needRegistry);
      const merged = new Map<string, Resolution>(known);
      for (const [key, resolution] of fetched) {
        // An embedding the operator listed, which the registry does not have, stays what the operator said.
        if (resolution.kind === 'notFound' && known.get(key)?.kind === 'found') continue;
        merged.set(key, resolution);
      }
      return merged;
    },
  };
}
