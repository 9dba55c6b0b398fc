import { createWarning, type ApiError, type ApiWarning, type ErrorDetails } from '../../errors.js';
import type { Air } from '../../contracts/air.js';
import type { ImageInferenceTask } from '../../contracts/image-inference-task.js';
import type { LookupContext, ModelResolver, Resolution } from '../../contracts/model-resolver.js';
import { MAX_LORAS_PER_TASK, OUTPUT_QUALITY } from '../../contracts/task-limits.js';
import type { ModelRecord } from '../../contracts/model-record.js';
import type { ValidatedEmbedding, ValidatedLora, ValidatedTask } from '../../contracts/validated-task.js';
import type { IncomingTask } from '../task-type.js';
import { issuesToErrors } from '../structural-errors.js';
import { parseCommonTask } from './fast-parse.js';
import { checkModelUse, type ModelUse, type RuleLimits } from './model-rules.js';
import { checkPrompts, nothingToSay, promptRulesApply, type PromptEmbedding, type PromptParts } from './prompt-rules.js';
import { separateRunwareFields } from './runware-field-answers.js';
import { airSchema, embeddingEntrySchema, imageInferenceFields, imageInferenceSchema, loraEntrySchema } from './schema.js';

/**
 * The validation stage of imageInference: structure (the fast path, else zod) first, then semantics against
 * the resolved models. Every task is judged on its own and every problem of a task is reported, not only the
 * first; one bad task never affects another. All AIRs of the request are resolved in one call.
 */

/** Past this many errors a task is junk, not a typo; the rest would only bloat the response. */
export const MAX_ERRORS_PER_TASK = 50;

export interface TaskVerdict {
  readonly index: number;
  readonly details: ErrorDetails;
  readonly errors: readonly ApiError[];
  readonly warnings: readonly ApiWarning[];
  /** The normalised task with its resolved models, present exactly when there are no errors. */
  readonly valid: ValidatedTask | undefined;
}

export interface ValidationDependencies {
  readonly resolver: ModelResolver;
  readonly limits: RuleLimits;
}

export interface ValidationContext {
  /** Who asks, and how many cold AIRs the request may send to the registry. */
  readonly lookups?: LookupContext;
}

interface Inspection {
  readonly index: number;
  readonly details: ErrorDetails;
  readonly errors: ApiError[];
  readonly warnings: ApiWarning[];
  readonly parsed: ImageInferenceTask | undefined;
  readonly use: ModelUse;
  readonly prompts: PromptParts;
}

export async function validateImageInferenceTasks(
  tasks: readonly IncomingTask[],
  dependencies: ValidationDependencies,
  context: ValidationContext = {},
): Promise<TaskVerdict[]> {
  const inspections = tasks.map((task) => inspectStructure(task, dependencies.limits));

  const airs = new Map<string, Air>();
  for (const { use } of inspections) {
    if (use.model) airs.set(use.model.canonical, use.model);
    for (const entry of use.embeddings) airs.set(entry.air.canonical, entry.air);
    for (const entry of use.loras) airs.set(entry.air.canonical, entry.air);
  }
  const list = [...airs.values()];
  // A warm request is answered from memory without a promise; anything else takes the full path.
  const resolutions: ReadonlyMap<string, Resolution> =
    list.length === 0 ? new Map() : (dependencies.resolver.resolveFromMemory?.(list) ?? (await dependencies.resolver.resolveMany(list, context.lookups)));

  return inspections.map((inspection) => {
    const outcome = checkModelUse(inspection.use, resolutions, dependencies.limits, inspection.details);
    const prompts = promptRulesApply(inspection.prompts, inspection.use.embeddings.length)
      ? checkPrompts(inspection.prompts, promptEmbeddings(inspection.use, resolutions), outcome.baseFamily, inspection.details)
      : nothingToSay;
    const ruleErrors = prompts.errors.length > 0 ? [...outcome.errors, ...prompts.errors] : outcome.errors;
    const errors = inspection.errors.length + ruleErrors.length === 0 ? inspection.errors : [...inspection.errors, ...ruleErrors].slice(0, MAX_ERRORS_PER_TASK);
    const late = lateWarnings(inspection);
    const early = inspection.warnings;
    const ruleWarnings = prompts.warnings.length > 0 ? [...outcome.warnings, ...prompts.warnings] : outcome.warnings;
    const warnings = early.length + late.length === 0 ? ruleWarnings : [...early, ...ruleWarnings, ...late];
    return {
      index: inspection.index,
      details: inspection.details,
      errors,
      warnings,
      valid: errors.length === 0 && inspection.parsed ? withRecords(inspection.parsed, inspection.index, resolutions, prompts.mentions) : undefined,
    };
  });
}

/** What the parsed task asks for that clipgate takes without doing: the client is told, not misled. */
function lateWarnings(inspection: Inspection): ApiWarning[] {
  const task = inspection.parsed;
  if (!task) return [];
  const warnings: ApiWarning[] = [];
  if (task.outputFormat === 'PNG' && task.outputQuality !== OUTPUT_QUALITY.default) {
    warnings.push(
      createWarning('parameterNotApplied', `outputQuality ${task.outputQuality} is not applied: PNG is lossless and takes no quality. Ask for JPG or WEBP to set one.`, {
        ...inspection.details,
        parameter: 'outputQuality',
      }),
    );
  }
  return warnings;
}

const noEmbeddings: readonly ValidatedEmbedding[] = [];
const noLoras: readonly ValidatedLora[] = [];

function recordOf(air: Air, resolutions: ReadonlyMap<string, Resolution>): ModelRecord | undefined {
  const resolution = resolutions.get(air.canonical);
  return resolution?.kind === 'found' ? resolution.record : undefined;
}

function promptEmbeddings(use: ModelUse, resolutions: ReadonlyMap<string, Resolution>): PromptEmbedding[] {
  return use.embeddings.length === 0 ? [] : use.embeddings.map(({ index, air, weight }) => ({ index, air, weight, record: recordOf(air, resolutions) }));
}

/** Attaches the resolved records; the rules have already refused a task whose models did not resolve. */
function withRecords(
  task: ImageInferenceTask,
  index: number,
  resolutions: ReadonlyMap<string, Resolution>,
  mentions: ReadonlyMap<number, readonly string[]> | undefined,
): ValidatedTask | undefined {
  const model = recordOf(task.model, resolutions);
  if (!model) return undefined;
  // Most tasks carry neither: they share two empty arrays instead of allocating their own.
  if (task.embeddings.length === 0 && task.lora.length === 0) return { task, index, model, embeddings: noEmbeddings, loras: noLoras };
  const embeddings: ValidatedEmbedding[] = [];
  for (let position = 0; position < task.embeddings.length; position++) {
    const entry = task.embeddings[position]!;
    const record = recordOf(entry.model, resolutions);
    if (!record) return undefined;
    const named = mentions?.get(position);
    embeddings.push(named ? { air: entry.model, weight: entry.weight, record, mentions: named } : { air: entry.model, weight: entry.weight, record });
  }
  const loras: ValidatedLora[] = [];
  for (const entry of task.lora) {
    const record = recordOf(entry.model, resolutions);
    if (!record) return undefined;
    loras.push({ air: entry.model, weight: entry.weight, record });
  }
  return { task, index, model, embeddings, loras };
}

function inspectStructure(incoming: IncomingTask, limits: RuleLimits): Inspection {
  const { index, details, raw } = incoming;
  // A refused task (a taskUUID shared in the request) keeps its other checks, so the client sees everything.
  const refusals = incoming.refusals.length === 0 ? [] : [...incoming.refusals];
  const common = parseCommonTask(raw);
  if (common) return { index, details, errors: refusals, warnings: [], parsed: common, use: bounded(useOfParsed(common), limits), prompts: common };

  // Documented Runware fields clipgate does not take as parameters are answered here, before the schema.
  const separated = separateRunwareFields(raw, details);
  const errors = [...refusals, ...separated.errors];
  const result = imageInferenceSchema.safeParse(separated.task);
  if (result.success) {
    const parsed: ImageInferenceTask = result.data;
    if (typeof raw['seed'] === 'string') parsed.seedAsText = true;
    return { index, details, errors, warnings: separated.warnings, parsed, use: bounded(useOfParsed(parsed), limits), prompts: parsed };
  }
  errors.push(...issuesToErrors(result.error.issues, { input: separated.task, knownKeys, details }));
  return { index, details, errors, warnings: separated.warnings, parsed: undefined, use: bounded(useOfRaw(separated.task), limits), prompts: promptsOfRaw(separated.task) };
}

/**
 * Only as many embeddings and LoRAs as a task may carry are resolved: a task with thousands of entries is
 * refused for its count, not allowed to make the gateway look each one up at the registry.
 */
function bounded(use: ModelUse, limits: RuleLimits): ModelUse {
  if (use.embeddings.length <= limits.maxEmbeddingsPerTask && use.loras.length <= MAX_LORAS_PER_TASK) return use;
  return { ...use, embeddings: use.embeddings.slice(0, limits.maxEmbeddingsPerTask), loras: use.loras.slice(0, MAX_LORAS_PER_TASK) };
}

function useOfParsed(task: ImageInferenceTask): ModelUse {
  return {
    model: task.model,
    cfgScale: task.CFGScale,
    embeddingCount: task.embeddings.length,
    embeddings: task.embeddings.map((entry, index) => ({ index, air: entry.model, weight: entry.weight })),
    loras: task.lora.map((entry, index) => ({ index, air: entry.model, weight: entry.weight })),
  };
}

/**
 * A task that failed structural checks still gets its semantic checks on the parts that did pass, so a
 * client learns about a wrong width and an embedding on FLUX in one answer.
 */
function useOfRaw(raw: Record<string, unknown>): ModelUse {
  const model = airSchema.safeParse(raw['model']);
  const cfgScale = imageInferenceFields.CFGScale.safeParse(raw['CFGScale']);
  const embeddings = validEntries(raw['embeddings'], embeddingEntrySchema).map(({ index, entry }) => ({
    index,
    air: entry.model,
    weight: entry.weight,
  }));
  const loras = validEntries(raw['lora'], loraEntrySchema).map(({ index, entry }) => ({ index, air: entry.model, weight: entry.weight }));
  return {
    model: model.success ? model.data : undefined,
    cfgScale: cfgScale.success ? cfgScale.data : 7,
    embeddingCount: Array.isArray(raw['embeddings']) ? raw['embeddings'].length : 0,
    embeddings,
    loras,
  };
}

/** The prompt parts of a task that failed structural checks: a syntax error is reported beside a bad width. */
function promptsOfRaw(raw: Record<string, unknown>): PromptParts {
  const text = (value: unknown) => {
    const parsed = imageInferenceFields.positivePrompt.safeParse(value);
    return parsed.success ? parsed.data : '';
  };
  const weighting = imageInferenceFields.promptWeighting.safeParse(raw['promptWeighting']);
  const clipSkip = imageInferenceFields.clipSkip.safeParse(raw['clipSkip']);
  return {
    positivePrompt: text(raw['positivePrompt']),
    negativePrompt: text(raw['negativePrompt']),
    promptWeighting: weighting.success ? weighting.data : undefined,
    clipSkip: clipSkip.success ? clipSkip.data : 0,
  };
}

type EntrySchema = typeof embeddingEntrySchema | typeof loraEntrySchema;

function validEntries<Schema extends EntrySchema>(
  list: unknown,
  schema: Schema,
): { index: number; entry: ReturnType<Schema['parse']> }[] {
  if (!Array.isArray(list)) return [];
  const valid: { index: number; entry: ReturnType<Schema['parse']> }[] = [];
  list.forEach((item, index) => {
    const parsed = schema.safeParse(item);
    if (parsed.success) valid.push({ index, entry: parsed.data as ReturnType<Schema['parse']> });
  });
  return valid;
}

const entryKeys = Object.keys(embeddingEntrySchema.shape);
const taskKeys = Object.keys(imageInferenceFields);

function knownKeys(path: readonly PropertyKey[]): readonly string[] {
  return path.length === 0 ? taskKeys : entryKeys;
}
