import { createError, createWarning, type ApiError, type ApiWarning, type ErrorDetails } from '../../errors.js';
import type { Air } from '../../contracts/air.js';
import type { ModelResolver, Resolution } from '../../contracts/model-resolver.js';
import type { ValidatedTask } from '../../contracts/validated-task.js';
import {
  airSchema,
  embeddingEntrySchema,
  imageInferenceFields,
  imageInferenceSchema,
  loraEntrySchema,
  MAX_LORAS_PER_TASK,
  type ImageInferenceTask,
} from './schema.js';
import { parseCommonTask } from './fast-parse.js';
import { checkModelUse, type ModelUse, type RuleLimits } from './model-rules.js';
import { issuesToErrors } from '../structural-errors.js';

/**
 * The validation stage: structure (zod) first, then semantics against resolved models. Every task is
 * judged on its own and every problem of a task is reported, not only the first; one bad task never
 * affects another. All AIRs of the request are resolved in one call to the resolver.
 */

export const supportedTaskTypes = ['imageInference'] as const;

/** Past this many errors a task is junk, not a typo; the rest would only bloat the response. */
export const MAX_ERRORS_PER_TASK = 50;

export interface TaskVerdict {
  readonly index: number;
  readonly taskUUID: string | undefined;
  readonly taskType: string | undefined;
  readonly errors: readonly ApiError[];
  readonly warnings: readonly ApiWarning[];
  /** The normalised task with its resolved models, present exactly when there are no errors. */
  readonly valid: ValidatedTask | undefined;
}

export interface ValidationDependencies {
  readonly resolver: ModelResolver;
  readonly limits: RuleLimits;
}

interface Inspection {
  readonly index: number;
  readonly taskUUID: string | undefined;
  readonly taskType: string | undefined;
  readonly details: ErrorDetails;
  readonly errors: ApiError[];
  readonly parsed: ImageInferenceTask | undefined;
  /** Absent when the task is not an imageInference at all, so there is nothing to resolve. */
  readonly use: ModelUse | undefined;
}

export async function validateTasks(tasks: readonly unknown[], dependencies: ValidationDependencies): Promise<TaskVerdict[]> {
  const inspections = tasks.map((task, index) => inspectStructure(task, index, dependencies.limits));
  flagDuplicateTaskUUIDs(inspections);

  const airs = new Map<string, Air>();
  for (const { use } of inspections) {
    if (!use) continue;
    if (use.model) airs.set(use.model.canonical, use.model);
    for (const entry of use.embeddings) airs.set(entry.air.canonical, entry.air);
    for (const entry of use.loras) airs.set(entry.air.canonical, entry.air);
  }
  const list = [...airs.values()];
  // A warm request is answered from memory without a promise; anything else takes the full path.
  const resolutions: ReadonlyMap<string, Resolution> =
    list.length === 0 ? new Map() : (dependencies.resolver.resolveFromMemory?.(list) ?? (await dependencies.resolver.resolveMany(list)));

  return inspections.map((inspection) => {
    const outcome = inspection.use
      ? checkModelUse(inspection.use, resolutions, dependencies.limits, inspection.details)
      : { errors: [], warnings: [] };
    const errors = inspection.errors.length + outcome.errors.length === 0 ? inspection.errors : [...inspection.errors, ...outcome.errors].slice(0, MAX_ERRORS_PER_TASK);
    const delivery = deliveryWarnings(inspection);
    return {
      index: inspection.index,
      taskUUID: inspection.taskUUID,
      taskType: inspection.taskType,
      errors,
      warnings: delivery.length === 0 ? outcome.warnings : [...outcome.warnings, ...delivery],
      valid: errors.length === 0 && inspection.parsed ? withRecords(inspection.parsed, inspection.index, resolutions) : undefined,
    };
  });
}

/** Async delivery is accepted for Runware compatibility but not implemented: the client is told, not misled. */
function deliveryWarnings(inspection: Inspection): ApiWarning[] {
  const task = inspection.parsed;
  if (!task || (task.deliveryMethod !== 'async' && task.webhookURL === undefined)) return [];
  return [
    createWarning(
      'deliveredSynchronously',
      'This gateway answers every task in its own request: deliveryMethod "async" is treated as "sync" and the webhookURL is not called.',
      { ...inspection.details, parameter: task.webhookURL !== undefined ? 'webhookURL' : 'deliveryMethod' },
    ),
  ];
}

/** Attaches the resolved records; the rules have already refused a task whose models did not resolve. */
function withRecords(task: ImageInferenceTask, index: number, resolutions: ReadonlyMap<string, Resolution>): ValidatedTask | undefined {
  const recordOf = (air: Air) => {
    const resolution = resolutions.get(air.canonical);
    return resolution?.kind === 'found' ? resolution.record : undefined;
  };
  const model = recordOf(task.model);
  const embeddings = task.embeddings.map((entry) => ({ air: entry.model, weight: entry.weight, record: recordOf(entry.model) }));
  if (!model || embeddings.some((entry) => !entry.record)) return undefined;
  return { task, index, model, embeddings: embeddings.flatMap(({ air, weight, record }) => (record ? [{ air, weight, record }] : [])) };
}

function inspectStructure(raw: unknown, index: number, limits: RuleLimits): Inspection {
  if (!isPlainObject(raw)) {
    const details = { taskIndex: index };
    const error = createError('invalidTask', `task ${index} must be a JSON object with taskType and taskUUID; got ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : typeof raw}.`, details);
    return { index, taskUUID: undefined, taskType: undefined, details, errors: [error], parsed: undefined, use: undefined };
  }

  const taskUUID = typeof raw['taskUUID'] === 'string' && raw['taskUUID'].length <= 128 ? raw['taskUUID'] : undefined;
  const taskType = typeof raw['taskType'] === 'string' && raw['taskType'].length <= 64 ? raw['taskType'] : undefined;
  const details: ErrorDetails = detailsOf(taskUUID, taskType, index);

  if (taskType !== 'imageInference') {
    const what = raw['taskType'] === undefined ? 'taskType is required' : `taskType ${JSON.stringify(taskType ?? raw['taskType'])?.slice(0, 80)} is not supported`;
    const error = createError('unsupportedTaskType', `${what}; this gateway runs ${supportedTaskTypes.map((type) => `"${type}"`).join(', ')}.`, {
      ...details,
      parameter: 'taskType',
      allowed: supportedTaskTypes,
    });
    return { index, taskUUID, taskType, details, errors: [error], parsed: undefined, use: undefined };
  }

  const common = parseCommonTask(raw);
  if (common) return { index, taskUUID, taskType, details, errors: [], parsed: common, use: bounded(useOfParsed(common), limits) };
  const result = imageInferenceSchema.safeParse(raw);
  if (result.success) {
    return { index, taskUUID, taskType, details, errors: [], parsed: result.data, use: bounded(useOfParsed(result.data), limits) };
  }
  const errors = issuesToErrors(result.error.issues, { input: raw, knownKeys, details });
  return { index, taskUUID, taskType, details, errors, parsed: undefined, use: bounded(useOfRaw(raw), limits) };
}

/** Built field by field: this runs for every task, and conditional spreads cost more than the rest of it. */
function detailsOf(taskUUID: string | undefined, taskType: string | undefined, taskIndex: number): ErrorDetails {
  // In this order: it is the order of the fields in every error the client reads.
  const details: ErrorDetails = {};
  if (taskUUID !== undefined) details.taskUUID = taskUUID;
  if (taskType !== undefined) details.taskType = taskType;
  details.taskIndex = taskIndex;
  return details;
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
    loras: task.lora.map((entry, index) => ({ index, air: entry.model })),
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
  const loras = validEntries(raw['lora'], loraEntrySchema).map(({ index, entry }) => ({ index, air: entry.model }));
  return {
    model: model.success ? model.data : undefined,
    cfgScale: cfgScale.success ? cfgScale.data : 7,
    embeddingCount: Array.isArray(raw['embeddings']) ? raw['embeddings'].length : 0,
    embeddings,
    loras,
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

function flagDuplicateTaskUUIDs(inspections: readonly Inspection[]): void {
  if (inspections.length < 2) return;
  const indexesByUUID = new Map<string, number[]>();
  for (const { taskUUID, index } of inspections) {
    if (taskUUID === undefined) continue;
    const key = taskUUID.toLowerCase();
    const indexes = indexesByUUID.get(key);
    if (indexes) indexes.push(index);
    else indexesByUUID.set(key, [index]);
  }
  for (const indexes of indexesByUUID.values()) {
    if (indexes.length < 2) continue;
    for (const index of indexes) {
      const inspection = inspections[index];
      if (!inspection) continue;
      // Every task sharing the id is refused: results are matched by taskUUID, so none could be told apart.
      inspection.errors.push(
        createError('duplicateTaskUUID', `taskUUID "${inspection.taskUUID}" is used by tasks ${indexes.join(', ')} of this request; give each task its own UUID.`, {
          ...inspection.details,
          parameter: 'taskUUID',
        }),
      );
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
