import type { Air } from '../contracts/air.js';
import { builtinCatalogue, thirdPartySources } from './builtin-catalogue.js';
import type { ModelRecord } from '../contracts/model-record.js';
import type { ModelResolver, Resolution } from '../contracts/model-resolver.js';

/**
 * Resolves AIRs from what clipgate knows without asking anyone: the built-in list, the operator's
 * catalogue (which overrides it), and the hosted providers whose every model is third-party.
 */
export function createCatalogueResolver(operatorRecords: readonly ModelRecord[] = []): ModelResolver {
  const records = new Map<string, ModelRecord>();
  for (const record of [...builtinCatalogue, ...operatorRecords]) records.set(record.air, record);

  function resolveOne(air: Air): Resolution {
    const record = records.get(air.canonical);
    if (record) return { kind: 'found', record };
    if (thirdPartySources.has(air.source)) {
      return {
        kind: 'found',
        record: { air: air.canonical, name: air.canonical, type: 'checkpoint', family: 'third-party', source: 'provider' },
      };
    }
    return { kind: 'notFound' };
  }

  // Everything the catalogue knows is in memory: it always answers at once.
  function resolveFromMemory(airs: readonly Air[]): Map<string, Resolution> {
    const resolutions = new Map<string, Resolution>();
    for (const air of airs) resolutions.set(air.canonical, resolveOne(air));
    return resolutions;
  }

  return {
    resolveFromMemory,
    async resolveMany(airs) {
      return resolveFromMemory(airs);
    },
  };
}
