import { createError, createWarning, type ApiError, type ApiWarning, type ErrorDetails } from '../../errors.js';
import type { Air } from '../../contracts/air.js';
import { acceptsEmbeddings, embeddingFamilyNames, familyFacts, type Family } from '../../contracts/families.js';
import { modelTypeLabels, type ModelRecord } from '../../contracts/model-record.js';
import type { Resolution } from '../../contracts/model-resolver.js';

/**
 * The semantic half of validation: given what each AIR resolved to, decide whether the task's base
 * model, embeddings and LoRAs fit together (DESIGN §3). Pure: resolutions in, errors and warnings out.
 */

export interface EmbeddingUse {
  /** Position in the task's `embeddings` array, for `parameter` paths. */
  readonly index: number;
  readonly air: Air;
  readonly weight: number;
}

export interface LoraUse {
  readonly index: number;
  readonly air: Air;
  readonly weight: number;
}

/** The parts of a task the rules look at; each part is present only where it passed structural checks. */
export interface ModelUse {
  readonly model: Air | undefined;
  readonly cfgScale: number;
  /** Length of the array as sent, valid entries or not. */
  readonly embeddingCount: number;
  readonly embeddings: readonly EmbeddingUse[];
  readonly loras: readonly LoraUse[];
}

export interface RuleLimits {
  readonly maxEmbeddingsPerTask: number;
}

/** Above this many embeddings they start to interfere; accepted with a warning. */
export const EMBEDDING_COUNT_WARNING = 3;
/** Beyond ±this weight images often distort; accepted with a warning. */
export const EMBEDDING_WEIGHT_WARNING = 2;

export interface RuleOutcome {
  readonly errors: ApiError[];
  readonly warnings: ApiWarning[];
  /** The base model's family, where `model` resolved to a checkpoint: what later rules judge against. */
  readonly baseFamily: Family | undefined;
}

export function checkModelUse(
  use: ModelUse,
  resolutions: ReadonlyMap<string, Resolution>,
  limits: RuleLimits,
  details: ErrorDetails,
): RuleOutcome {
  const errors: ApiError[] = [];
  const warnings: ApiWarning[] = [];
  const recordOf = (air: Air): ModelRecord | undefined => {
    const resolution = resolutions.get(air.canonical);
    return resolution?.kind === 'found' ? resolution.record : undefined;
  };
  const unresolved = (air: Air, parameter: string): ApiError =>
    unresolvedError(air, resolutions.get(air.canonical), { ...details, parameter });

  const base = use.model && recordOf(use.model);
  if (use.model && !base) errors.push(unresolved(use.model, 'model'));
  if (base && base.type !== 'checkpoint') {
    const instead = base.type === 'textualInversion' ? ' Put it in embeddings[] and name a base model here.' : base.type === 'lora' ? ' Put it in lora[] and name a base model here.' : '';
    errors.push(
      createError('notABaseModel', `model "${base.air}" (${base.name}) is ${modelTypeLabels[base.type]}, not a base model.${instead}`, {
        ...details,
        parameter: 'model',
      }),
    );
  }
  const baseFamily = base?.type === 'checkpoint' ? base.family : undefined;

  if (use.embeddingCount > limits.maxEmbeddingsPerTask) {
    errors.push(
      createError(
        'tooManyEmbeddings',
        `embeddings holds ${use.embeddingCount} entries; this gateway takes at most ${limits.maxEmbeddingsPerTask} per task. Drop the weakest, or split the work into several tasks.`,
        { ...details, parameter: 'embeddings', max: limits.maxEmbeddingsPerTask },
      ),
    );
  } else if (use.embeddingCount > EMBEDDING_COUNT_WARNING) {
    warnings.push(
      createWarning(
        'manyEmbeddings',
        `${use.embeddingCount} embeddings in one task: accepted, but more than ${EMBEDDING_COUNT_WARNING} tend to interfere with each other and wash out.`,
        { ...details, parameter: 'embeddings' },
      ),
    );
  }

  const architectureRejected = base !== undefined && baseFamily !== undefined && use.embeddingCount > 0 && !acceptsEmbeddings(baseFamily);
  if (architectureRejected && base) errors.push(unsupportedArchitecture(base, details));

  // Only a list of two or more can repeat an embedding: most tasks skip the map.
  const firstIndexByAir = use.embeddings.length > 1 ? new Map<string, number>() : undefined;
  for (const embedding of use.embeddings) {
    const parameter = `embeddings[${embedding.index}].model`;
    const earlier = firstIndexByAir?.get(embedding.air.canonical);
    if (earlier !== undefined) {
      errors.push(
        createError(
          'duplicateEmbedding',
          `embedding "${embedding.air.canonical}" already appears at embeddings[${earlier}]. Send it once, with the combined weight.`,
          { ...details, parameter },
        ),
      );
    } else {
      firstIndexByAir?.set(embedding.air.canonical, embedding.index);
    }

    const record = recordOf(embedding.air);
    if (!record) errors.push(unresolved(embedding.air, parameter));
    else if (record.type !== 'textualInversion') errors.push(notAnEmbedding(record, parameter, details));
    else if (baseFamily !== undefined && !architectureRejected && record.family !== baseFamily && base) {
      errors.push(incompatibleFamily(record, base, parameter, details));
    }
    if (record?.file?.labelledFamily !== undefined) warnings.push(labelMismatch(record, record.file.labelledFamily, parameter, details));

    warnings.push(...weightWarnings(embedding, use.cfgScale, details));
  }

  for (const lora of use.loras) {
    const parameter = `lora[${lora.index}].model`;
    const record = recordOf(lora.air);
    if (!record) errors.push(unresolved(lora.air, parameter));
    else if (record.type !== 'lora') {
      const instead = record.type === 'textualInversion' ? ' Embeddings go in embeddings[].' : '';
      errors.push(
        createError('notALora', `lora entry "${record.air}" (${record.name}) is ${modelTypeLabels[record.type]}, not a LoRA.${instead}`, {
          ...details,
          parameter,
        }),
      );
    } else if (base && baseFamily !== undefined && record.family !== baseFamily) {
      errors.push(incompatibleLora(record, base, parameter, details));
    }
    if (lora.weight === 0) {
      warnings.push(
        createWarning('ineffectiveLoraWeight', `weight 0 for LoRA "${lora.air.canonical}" has no effect; it is not applied. Remove the entry or give it a weight.`, {
          ...details,
          parameter: `lora[${lora.index}].weight`,
        }),
      );
    }
  }

  return { errors, warnings, baseFamily };
}

function unresolvedError(air: Air, resolution: Resolution | undefined, details: ErrorDetails): ApiError {
  switch (resolution?.kind) {
    case 'rejected':
      return createError(resolution.code, `"${air.canonical}": ${resolution.message}`, details);
    case 'unavailable':
      return createError('modelUnavailable', `"${air.canonical}" could not be looked up: ${resolution.message} Retry later.`, details);
    case 'deferred':
      return createError(
        'tooManyNewModels',
        `"${air.canonical}" was not looked up: this request names more models the gateway has not seen than the ${resolution.budget} one request may send to the registry. Those were looked up and are cached now; retry for the rest.`,
        { ...details, retryAfter: 1 },
      );
    default:
      return createError(
        'unknownModel',
        `"${air.canonical}" is not a model this gateway knows or can find in its registry. Check the AIR (source:modelId@versionId), or ask the operator to add it to the model catalogue (MODEL_CATALOG_PATH).`,
        details,
      );
  }
}

function labelMismatch(record: ModelRecord, labelled: Family, parameter: string, details: ErrorDetails): ApiWarning {
  return createWarning(
    'embeddingLabelMismatch',
    `embedding "${record.air}" is labelled ${familyLabel(labelled)} by its registry, but its file holds ${familyLabel(record.family)} vectors; it is treated as ${familyLabel(record.family)}.`,
    { ...details, parameter },
  );
}

function unsupportedArchitecture(base: ModelRecord, details: ErrorDetails): ApiError {
  const facts = familyFacts[base.family];
  return createError(
    'unsupportedEmbeddingArchitecture',
    `Embeddings cannot be used with model "${base.air}" (${base.name}): it is ${facts.label} (family "${base.family}"), which encodes prompts with ${facts.textEncoders}, not a CLIP text encoder that a textual inversion extends. Embeddings work only on SD 1.x ("sd1") and SDXL ("sdxl") models. For this model use a LoRA in lora[] or an IP-Adapter reference image instead, or choose an SD 1.x or SDXL model.`,
    { ...details, parameter: 'embeddings', allowed: embeddingFamilyNames },
  );
}

function notAnEmbedding(record: ModelRecord, parameter: string, details: ErrorDetails): ApiError {
  const instead =
    record.type === 'lora'
      ? ' Use lora[] for LoRAs.'
      : record.type === 'checkpoint'
        ? ' A base model goes in model.'
        : '';
  return createError(
    'notAnEmbedding',
    `"${record.air}" (${record.name}) is ${modelTypeLabels[record.type]}, not an embedding (textual inversion).${instead}`,
    { ...details, parameter },
  );
}

function incompatibleFamily(embedding: ModelRecord, base: ModelRecord, parameter: string, details: ErrorDetails): ApiError {
  return createError(
    'incompatibleEmbeddingFamily',
    `embedding "${embedding.air}" (${embedding.name}) was trained for ${familyLabel(embedding.family)}, but model "${base.air}" (${base.name}) is ${familyLabel(base.family)}; its vectors do not fit that text encoder. Use a ${familyLabel(base.family)} version of the embedding, or a ${familyLabel(embedding.family)} model.`,
    { ...details, parameter, allowed: [base.family] },
  );
}

function incompatibleLora(lora: ModelRecord, base: ModelRecord, parameter: string, details: ErrorDetails): ApiError {
  const evidence = lora.loraFile ? ` (its file says so: ${lora.loraFile.evidence})` : '';
  return createError(
    'incompatibleLoraFamily',
    `LoRA "${lora.air}" (${lora.name}) was trained for ${familyLabel(lora.family)}${evidence}, but model "${base.air}" (${base.name}) is ${familyLabel(base.family)}; its weights do not fit that model. Use a ${familyLabel(base.family)} version of the LoRA, or a ${familyLabel(lora.family)} model.`,
    { ...details, parameter, allowed: [base.family] },
  );
}

function familyLabel(family: Family): string {
  return `${familyFacts[family].label} ("${family}")`;
}

function weightWarnings(embedding: EmbeddingUse, cfgScale: number, details: ErrorDetails): ApiWarning[] {
  const parameter = `embeddings[${embedding.index}].weight`;
  const at = { ...details, parameter };
  const warnings: ApiWarning[] = [];
  if (Math.abs(embedding.weight) > EMBEDDING_WEIGHT_WARNING) {
    warnings.push(
      createWarning(
        'extremeEmbeddingWeight',
        `weight ${embedding.weight} for "${embedding.air.canonical}" is beyond ±${EMBEDDING_WEIGHT_WARNING}: accepted, but such weights often distort the image.`,
        at,
      ),
    );
  }
  if (embedding.weight === 0) {
    warnings.push(
      createWarning('ineffectiveEmbeddingWeight', `weight 0 for "${embedding.air.canonical}" has no effect; remove the entry or give it a weight.`, at),
    );
  }
  if (embedding.weight < 0 && cfgScale <= 1) {
    warnings.push(
      createWarning(
        'negativeEmbeddingWithoutGuidance',
        `"${embedding.air.canonical}" has a negative weight, so it goes into the negative prompt, which has no effect at CFGScale ${cfgScale} (≤ 1). Raise CFGScale or drop the embedding.`,
        at,
      ),
    );
  }
  return warnings;
}
