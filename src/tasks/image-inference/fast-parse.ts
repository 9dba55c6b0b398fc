import { z } from 'zod';
import { AIR_MAX_LENGTH, parseAir, type Air } from '../../contracts/air.js';
import { deliveryMethods, outputFormats, outputTypes, type ImageInferenceTask, type ModelEntry } from '../../contracts/image-inference-task.js';
import {
  CFG_SCALE,
  CLIP_SKIP,
  DIMENSION,
  MAX_EMBEDDINGS_CEILING,
  MAX_LORAS_PER_TASK,
  NUMBER_RESULTS,
  OUTPUT_QUALITY,
  PROMPT_MAX_LENGTH,
  STEPS,
  WEIGHT_LIMIT,
} from '../../contracts/task-limits.js';
import { imageInferenceFields } from './schema.js';
import { schedulers } from './schedulers.js';

/**
 * The hot path of validation: a task in the shape almost every client sends — plain JSON values, all in
 * range — parsed by hand into exactly what `imageInferenceSchema` would give, at a fraction of zod's cost
 * (it runs for every task of every request). Anything it does not recognise as plainly valid — a wrong type, a
 * value out of range, a string seed, a webhook URL, an unknown key — returns undefined, and zod decides and
 * words the errors. So this may be stricter than the schema, never looser; test/tasks/common-task-parse.test.ts
 * holds it to that against zod on thousands of generated tasks.
 */

const taskKeys: ReadonlySet<string> = new Set(Object.keys(imageInferenceFields));
const schedulerNames: ReadonlySet<string> = new Set(schedulers);
const outputTypeNames: ReadonlySet<string> = new Set(outputTypes);
const outputFormatNames: ReadonlySet<string> = new Set(outputFormats);
const deliveryMethodNames: ReadonlySet<string> = new Set(deliveryMethods);
/** Exactly what the schema's z.uuid() accepts. */
const uuid = z.core.regexes.uuid();

export function parseCommonTask(raw: Record<string, unknown>): ImageInferenceTask | undefined {
  for (const key in raw) {
    if (!taskKeys.has(key) || raw[key] === undefined) return undefined;
  }
  const { taskUUID, positivePrompt, negativePrompt, model, width, height, seed } = raw;
  if (raw['taskType'] !== 'imageInference') return undefined;
  if (typeof taskUUID !== 'string' || !uuid.test(taskUUID)) return undefined;
  if (!isPrompt(positivePrompt) || (negativePrompt !== undefined && !isPrompt(negativePrompt))) return undefined;
  const modelAir = airOf(model);
  if (!modelAir || !isDimension(width) || !isDimension(height)) return undefined;
  if (seed !== undefined && !(Number.isSafeInteger(seed) && (seed as number) >= 0)) return undefined;
  if (raw['webhookURL'] !== undefined || raw['promptWeighting'] !== undefined) return undefined;

  const steps = intOr(raw['steps'], STEPS);
  const CFGScale = numberOr(raw['CFGScale'], CFG_SCALE);
  const clipSkip = intOr(raw['clipSkip'], CLIP_SKIP);
  const numberResults = intOr(raw['numberResults'], NUMBER_RESULTS);
  const outputQuality = intOr(raw['outputQuality'], OUTPUT_QUALITY);
  const scheduler = memberOr(raw['scheduler'], 'Default', schedulerNames);
  const outputType = memberOr(raw['outputType'], 'URL', outputTypeNames) as ImageInferenceTask['outputType'] | undefined;
  const outputFormat = memberOr(raw['outputFormat'], 'JPG', outputFormatNames) as ImageInferenceTask['outputFormat'] | undefined;
  const deliveryMethod = memberOr(raw['deliveryMethod'], 'sync', deliveryMethodNames) as ImageInferenceTask['deliveryMethod'] | undefined;
  const includeCost = raw['includeCost'] === undefined ? false : raw['includeCost'];
  const checkNSFW = raw['checkNSFW'] === undefined ? false : raw['checkNSFW'];
  const lora = entriesOf(raw['lora'], MAX_LORAS_PER_TASK);
  const embeddings = entriesOf(raw['embeddings'], MAX_EMBEDDINGS_CEILING);
  if (
    steps === undefined ||
    CFGScale === undefined ||
    clipSkip === undefined ||
    numberResults === undefined ||
    outputQuality === undefined ||
    scheduler === undefined ||
    outputType === undefined ||
    outputFormat === undefined ||
    deliveryMethod === undefined ||
    typeof includeCost !== 'boolean' ||
    typeof checkNSFW !== 'boolean' ||
    !lora ||
    !embeddings
  ) {
    return undefined;
  }
  const task: ImageInferenceTask = {
    taskType: 'imageInference',
    taskUUID,
    positivePrompt,
    model: modelAir,
    width,
    height,
    steps,
    CFGScale,
    scheduler,
    clipSkip,
    numberResults,
    outputType,
    outputFormat,
    outputQuality,
    checkNSFW,
    deliveryMethod,
    includeCost,
    lora,
    embeddings,
  };
  // Optional fields the task left out stay absent, as zod leaves them.
  if (negativePrompt !== undefined) task.negativePrompt = negativePrompt;
  if (seed !== undefined) task.seed = BigInt(seed as number);
  return task;
}

function isPrompt(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= PROMPT_MAX_LENGTH;
}

function isDimension(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= DIMENSION.min && (value as number) <= DIMENSION.max && (value as number) % DIMENSION.multipleOf === 0;
}

function airOf(value: unknown): Air | undefined {
  return typeof value === 'string' && value.length <= AIR_MAX_LENGTH ? parseAir(value) : undefined;
}

interface Range {
  readonly min: number;
  readonly max: number;
  readonly default: number;
}

function intOr(value: unknown, range: Range): number | undefined {
  if (value === undefined) return range.default;
  return Number.isSafeInteger(value) && (value as number) >= range.min && (value as number) <= range.max ? (value as number) : undefined;
}

function numberOr(value: unknown, range: Range): number | undefined {
  if (value === undefined) return range.default;
  return typeof value === 'number' && value >= range.min && value <= range.max ? value : undefined;
}

function memberOr(value: unknown, fallback: string, members: ReadonlySet<string>): string | undefined {
  if (value === undefined) return fallback;
  return typeof value === 'string' && members.has(value) ? value : undefined;
}

/** `{ model, weight? }` entries, as for both `embeddings` and `lora`; an empty list when absent. */
const weightRange: Range = { min: -WEIGHT_LIMIT, max: WEIGHT_LIMIT, default: 1 };

function entriesOf(value: unknown, max: number): ModelEntry[] | undefined {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > max) return undefined;
  const entries: ModelEntry[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
    const entry = item as Record<string, unknown>;
    for (const key in entry) {
      if ((key !== 'model' && key !== 'weight') || entry[key] === undefined) return undefined;
    }
    const model = airOf(entry['model']);
    const weight = numberOr(entry['weight'], weightRange);
    if (!model || weight === undefined) return undefined;
    entries.push({ model, weight });
  }
  return entries;
}
