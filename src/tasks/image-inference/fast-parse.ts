import { z } from 'zod';
import { AIR_MAX_LENGTH, parseAir, type Air } from '../../contracts/air.js';
import { imageInferenceFields, MAX_EMBEDDINGS_CEILING, MAX_LORAS_PER_TASK, type EmbeddingEntry, type ImageInferenceTask, type LoraEntry } from './schema.js';
import { schedulers, type Scheduler } from './schedulers.js';

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
const outputTypes: ReadonlySet<string> = new Set(['URL', 'base64Data', 'dataURI']);
const outputFormats: ReadonlySet<string> = new Set(['PNG', 'JPG', 'WEBP']);
const deliveryMethods: ReadonlySet<string> = new Set(['sync', 'async']);
/** Exactly what the schema's z.uuid() accepts. */
const uuid = z.core.regexes.uuid();
const PROMPT_MAX = 3000;
const WEIGHT_LIMIT = 4;

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
  if (raw['webhookURL'] !== undefined) return undefined;

  const steps = intOr(raw['steps'], 20, 1, 100);
  const CFGScale = numberOr(raw['CFGScale'], 7, 0, 30);
  const clipSkip = intOr(raw['clipSkip'], 0, 0, 2);
  const numberResults = intOr(raw['numberResults'], 1, 1, 20);
  const scheduler = memberOr(raw['scheduler'], 'Default', schedulerNames) as Scheduler | undefined;
  const outputType = memberOr(raw['outputType'], 'URL', outputTypes) as ImageInferenceTask['outputType'] | undefined;
  const outputFormat = memberOr(raw['outputFormat'], 'JPG', outputFormats) as ImageInferenceTask['outputFormat'] | undefined;
  const deliveryMethod = memberOr(raw['deliveryMethod'], 'sync', deliveryMethods) as ImageInferenceTask['deliveryMethod'] | undefined;
  const includeCost = raw['includeCost'] === undefined ? false : raw['includeCost'];
  const lora = entriesOf(raw['lora'], MAX_LORAS_PER_TASK);
  const embeddings = entriesOf(raw['embeddings'], MAX_EMBEDDINGS_CEILING);
  if (
    steps === undefined ||
    CFGScale === undefined ||
    clipSkip === undefined ||
    numberResults === undefined ||
    scheduler === undefined ||
    outputType === undefined ||
    outputFormat === undefined ||
    deliveryMethod === undefined ||
    typeof includeCost !== 'boolean' ||
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
    deliveryMethod,
    includeCost,
    lora: lora satisfies LoraEntry[],
    embeddings: embeddings satisfies EmbeddingEntry[],
  };
  // Optional fields the task left out stay absent, as zod leaves them.
  if (negativePrompt !== undefined) task.negativePrompt = negativePrompt;
  if (seed !== undefined) task.seed = BigInt(seed as number);
  return task;
}

function isPrompt(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= PROMPT_MAX;
}

function isDimension(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 128 && (value as number) <= 2048 && (value as number) % 64 === 0;
}

function airOf(value: unknown): Air | undefined {
  return typeof value === 'string' && value.length <= AIR_MAX_LENGTH ? parseAir(value) : undefined;
}

function intOr(value: unknown, fallback: number, min: number, max: number): number | undefined {
  if (value === undefined) return fallback;
  return Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max ? (value as number) : undefined;
}

function numberOr(value: unknown, fallback: number, min: number, max: number): number | undefined {
  if (value === undefined) return fallback;
  return typeof value === 'number' && value >= min && value <= max ? value : undefined;
}

function memberOr(value: unknown, fallback: string, members: ReadonlySet<string>): string | undefined {
  if (value === undefined) return fallback;
  return typeof value === 'string' && members.has(value) ? value : undefined;
}

/** `{ model, weight? }` entries, as for both `embeddings` and `lora`; an empty list when absent. */
function entriesOf(value: unknown, max: number): { model: Air; weight: number }[] | undefined {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > max) return undefined;
  const entries: { model: Air; weight: number }[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
    const entry = item as Record<string, unknown>;
    for (const key in entry) {
      if ((key !== 'model' && key !== 'weight') || entry[key] === undefined) return undefined;
    }
    const model = airOf(entry['model']);
    const weight = numberOr(entry['weight'], 1, -WEIGHT_LIMIT, WEIGHT_LIMIT);
    if (!model || weight === undefined) return undefined;
    entries.push({ model, weight });
  }
  return entries;
}
