import type { FastifyBaseLogger } from 'fastify';
import type { ResolutionMetrics } from '../cache/resolution-metrics.js';
import type { Air } from '../contracts/air.js';
import type { Resolution } from '../contracts/model-resolver.js';
import { EmbeddingRejected, EmbeddingUnavailable, ingestEmbedding, type IngestDependencies } from '../embeddings/ingest-embedding.js';
import { inspectLora, LoraRejected, LoraUnavailable } from '../loras/ingest-lora.js';
import { RegistryUnavailableError, type CivitaiRegistry, type RegistryModelVersion } from './civitai-registry.js';
import type { ModelRecord } from '../contracts/model-record.js';
import type { ErrorCode } from '../errors.js';
import type { MetricsRecorder } from '../contracts/metrics-recorder.js';

/**
 * The registry as a source of resolutions: Civitai AIRs are looked up by version id; an embedding's file is
 * ingested on the way, so what is cached is the whole truth about it — including the family its tensor
 * shapes say, which wins over the registry's label.
 */
export interface RegistrySourceDependencies {
  readonly registry: CivitaiRegistry;
  /** Operator-facing details (tokens, URLs) go here, never into a client's error. */
  readonly logger: Pick<FastifyBaseLogger, 'warn'>;
  readonly ingest: Omit<IngestDependencies, 'onDownload'>;
  readonly metrics: ResolutionMetrics;
  readonly recorder: MetricsRecorder;
  readonly clock: () => number;
}

export function createRegistrySource(dependencies: RegistrySourceDependencies): (air: Air) => Promise<Resolution> {
  const { registry, metrics, recorder } = dependencies;
  const refused = (code: ErrorCode, message: string): Resolution => {
    recorder.modelFileRefused(code);
    return { kind: 'rejected', code, message };
  };
  return async (air) => {
    // Civitai ids are numbers: anything else cannot exist there, and is not worth a registry call.
    if (air.source !== 'civitai' || !/^\d{1,12}$/.test(air.id) || !/^\d{1,12}$/.test(air.version)) return { kind: 'notFound' };

    metrics.registryCalls++;
    const called = performance.now();
    let lookup;
    try {
      lookup = await registry.getModelVersion(air.version);
    } catch (error) {
      if (!(error instanceof RegistryUnavailableError)) throw error;
      metrics.registryFailures++;
      recorder.registryCall('failure', (performance.now() - called) / 1000);
      dependencies.logger.warn({ air: air.canonical, problem: error.problem, status: error.status, err: error.message }, 'registry lookup failed');
      if (error.problem === 'rejected') {
        // The registry refused this lookup itself (a 4xx): asking again will not change its mind.
        return { kind: 'rejected', code: 'unknownModel', message: `the model registry refused to look it up (HTTP ${error.status ?? '4xx'}).` };
      }
      return { kind: 'unavailable', message: `the model registry is not answering (${error.problem === 'unauthorized' ? 'it refused the gateway\'s credentials' : 'unreachable, overloaded or answering errors'}).` };
    }
    recorder.registryCall(lookup.kind === 'notFound' ? 'notFound' : 'success', (performance.now() - called) / 1000);
    if (lookup.kind === 'notFound') return { kind: 'notFound' };

    const version = lookup.version;
    if (version.modelId !== air.id) {
      return {
        kind: 'rejected',
        code: 'unknownModel',
        message: `version ${air.version} belongs to model ${version.modelId}, not ${air.id}; the AIR should be "civitai:${version.modelId}@${air.version}".`,
      };
    }
    const record: ModelRecord = {
      air: air.canonical,
      name: version.name,
      type: version.type,
      family: version.family,
      baseModel: version.baseModel,
      source: 'registry',
      trainedWords: version.trainedWords,
      fetchedAt: dependencies.clock(),
    };
    if (record.type === 'lora') return await loraResolution(record, version, dependencies, refused);
    if (record.type !== 'textualInversion') return { kind: 'found', record };
    if (!version.file) {
      return refused('embeddingFileMissing', 'the registry lists no downloadable file for this embedding.');
    }

    try {
      const ingested = await ingestEmbedding(version.file, version.family, {
        ...dependencies.ingest,
        onDownload: () => metrics.downloads++,
      });
      return { kind: 'found', record: { ...record, family: ingested.family, file: ingested.facts } };
    } catch (error) {
      if (error instanceof EmbeddingRejected) return refused(error.code, error.message);
      if (error instanceof EmbeddingUnavailable) return { kind: 'unavailable', message: error.message };
      throw error;
    }
  };
}

/** A LoRA's record with its file read from the header (family from the file), or why it cannot be used. */
async function loraResolution(
  record: ModelRecord,
  version: RegistryModelVersion,
  dependencies: RegistrySourceDependencies,
  refused: (code: ErrorCode, message: string) => Resolution,
): Promise<Resolution> {
  if (!version.file) return refused('loraFileMissing', 'the registry lists no downloadable file for this LoRA.');
  try {
    const inspected = await inspectLora(version.file, version.family, {
      timeoutMs: dependencies.ingest.timeoutMs,
      credentials: dependencies.ingest.credentials,
      onHeaderRead: () => dependencies.metrics.downloads++,
    });
    return { kind: 'found', record: { ...record, family: inspected.family, loraFile: inspected.facts } };
  } catch (error) {
    if (error instanceof LoraRejected) return refused(error.code, error.message);
    if (error instanceof LoraUnavailable) return { kind: 'unavailable', message: error.message };
    throw error;
  }
}
