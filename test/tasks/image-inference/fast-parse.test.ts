import { describe, expect, it } from 'vitest';
import { parseCommonTask } from '../../../src/tasks/image-inference/fast-parse.js';
import { imageInferenceSchema } from '../../../src/tasks/image-inference/schema.js';
import { schedulers } from '../../../src/tasks/image-inference/schedulers.js';
import { seededRandom } from '../../support/seeded-random.js';

/**
 * parseCommonTask must never accept what the schema refuses, and must give exactly the schema's output for
 * what it accepts; it may hand anything to zod. Checked on generated tasks: plain valid ones (which it must
 * take — that is its point) and the same tasks with one to three things broken or made unusual.
 */

const random = seededRandom(20261126);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const chance = (p: number) => random() < p;

const uuids = ['5f0c1b2a-3d4e-4f60-8a7b-9c0d1e2f3a4b', 'B3C1D2E4-F5A6-4B7C-9D8E-0F1A2B3C4D5E', '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '5f0c1b2a-3d4e-9f60-8a7b-9c0d1e2f3a4b', '5f0c1b2a-3d4e-4f60-7a7b-9c0d1e2f3a4b', 'not-a-uuid', ''];
const airs = ['civitai:4384@128713', 'CivitAI:7808@9208', 'urn:air:sd1:embedding:civitai:7808@9208', ' civitai:1@2 ', 'runware:100@1', 'civitai:4384', 'civitai:@1', '', `civitai:${'9'.repeat(140)}@1`, `civitai:1@${'x'.repeat(300)}`];
const strangeValues: unknown[] = [null, true, false, 0, -1, 1.5, 64, 2049, 2048, 128, 127, 500, 1000, 101, 0.5, 30, 30.01, -4, 4, 4.5, 1e308, '', 'x', '512', [], {}, [1], { a: 1 }, 2n ** 60n, 2n ** 64n];

function entry(): Record<string, unknown> {
  const value: Record<string, unknown> = { model: pick(airs.slice(0, 5)) };
  if (chance(0.6)) value['weight'] = pick([1, 0.8, -1, 0, 2.5, -4, 4, 3.99]);
  return value;
}

function validTask(): Record<string, unknown> {
  const task: Record<string, unknown> = {
    taskType: 'imageInference',
    taskUUID: pick(uuids.slice(0, 2)),
    positivePrompt: pick(['a lighthouse', 'x', 'é'.repeat(3000)]),
    model: pick(airs.slice(0, 5)),
    width: pick([128, 512, 1024, 2048]),
    height: pick([128, 768, 1216]),
  };
  const optional: Record<string, () => unknown> = {
    negativePrompt: () => pick(['blurry', 'y']),
    steps: () => pick([1, 20, 100]),
    CFGScale: () => pick([0, 1, 7, 7.5, 30]),
    seed: () => pick([0, 42, Number.MAX_SAFE_INTEGER]),
    scheduler: () => pick(schedulers),
    clipSkip: () => pick([0, 1, 2]),
    numberResults: () => pick([1, 4, 20]),
    outputType: () => pick(['URL', 'base64Data', 'dataURI']),
    outputFormat: () => pick(['PNG', 'JPG', 'WEBP']),
    deliveryMethod: () => pick(['sync', 'async']),
    includeCost: () => pick([true, false]),
    lora: () => Array.from({ length: Math.floor(random() * 3) }, entry),
    embeddings: () => Array.from({ length: Math.floor(random() * 4) }, entry),
  };
  for (const [key, make] of Object.entries(optional)) if (chance(0.4)) task[key] = make();
  return task;
}

const fieldNames = [...Object.keys(validTask()), 'negativePrompt', 'steps', 'CFGScale', 'seed', 'scheduler', 'clipSkip', 'numberResults', 'outputType', 'outputFormat', 'deliveryMethod', 'includeCost', 'webhookURL', 'lora', 'embeddings'];

function mutate(task: Record<string, unknown>): void {
  const field = pick(fieldNames);
  switch (Math.floor(random() * 8)) {
    case 0:
      task[field] = pick(strangeValues);
      break;
    case 1:
      delete task[field];
      break;
    case 2:
      task[pick(['extra', '__proto__', 'Model', 'cfgScale'])] = 1;
      break;
    case 3:
      task['taskUUID'] = pick(uuids);
      break;
    case 4:
      task[pick(['model', 'positivePrompt'])] = pick(airs);
      break;
    case 5:
      task['seed'] = pick(['42', '18446744073709551615', 2n ** 63n, -5, 1.5, '-1']);
      break;
    case 6: {
      const list = [entry(), entry()];
      const target = list[0] as Record<string, unknown>;
      target[pick(['model', 'weight', 'extra'])] = pick([...strangeValues, ...airs]);
      task[pick(['lora', 'embeddings'])] = pick([list, Array.from({ length: 11 }, entry), Array.from({ length: 101 }, entry), 'civitai:1@2']);
      break;
    }
    default:
      task[pick(['webhookURL', 'negativePrompt', 'positivePrompt'])] = pick(['https://example.com/hook', 'ftp://x', '', 'z'.repeat(3001), undefined]);
  }
}

describe('parseCommonTask against the schema', () => {
  it('takes every plain valid task, with exactly the schema’s output', () => {
    for (let i = 0; i < 3000; i++) {
      const task = validTask();
      const expected = imageInferenceSchema.safeParse(task);
      expect(expected.success, JSON.stringify(task)).toBe(true);
      expect(parseCommonTask(task), JSON.stringify(task)).toStrictEqual(expected.data);
    }
  });

  it('never takes what the schema refuses, and agrees with it on what it takes', () => {
    let taken = 0;
    let refusedBySchema = 0;
    for (let i = 0; i < 6000; i++) {
      const task = validTask();
      const mutations = 1 + Math.floor(random() * 3);
      for (let m = 0; m < mutations; m++) mutate(task);
      const expected = imageInferenceSchema.safeParse(task);
      const fast = parseCommonTask(task);
      if (!expected.success) refusedBySchema++;
      if (fast === undefined) continue;
      taken++;
      expect(expected.success, JSON.stringify(task, (_key, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value))).toBe(true);
      expect(fast).toStrictEqual(expected.data);
    }
    // Both branches were really exercised.
    expect(taken).toBeGreaterThan(300);
    expect(refusedBySchema).toBeGreaterThan(3000);
  });

  it('agrees with the schema on every field at and around its limits', () => {
    const boundaries: Record<string, unknown[]> = {
      width: [63, 64, 127, 128, 129, 192, 2047, 2048, 2049, 2112, 512.5],
      height: [128, 2048, 2112, 100],
      steps: [0, 1, 2, 99, 100, 101, 20.5, -1],
      CFGScale: [-0.01, 0, 0.01, 29.99, 30, 30.01, -0],
      clipSkip: [-1, 0, 1, 2, 3, 1.5],
      numberResults: [0, 1, 20, 21, 2.5],
      seed: [-1, 0, 1, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, 0.5, 2n ** 64n - 1n, 2n ** 64n],
      positivePrompt: ['', 'a', 'a'.repeat(3000), 'a'.repeat(3001)],
      negativePrompt: ['', 'a', 'a'.repeat(3000), 'a'.repeat(3001)],
      embeddings: [
        [{ model: 'civitai:7808@9208', weight: -4 }],
        [{ model: 'civitai:7808@9208', weight: -4.01 }],
        [{ model: 'civitai:7808@9208', weight: 4.01 }],
        [{ model: 'civitai:7808@9208' }],
        [{ weight: 1 }],
        Array.from({ length: 100 }, () => ({ model: 'civitai:7808@9208' })),
        Array.from({ length: 101 }, () => ({ model: 'civitai:7808@9208' })),
      ],
      lora: [Array.from({ length: 10 }, () => ({ model: 'civitai:1@2' })), Array.from({ length: 11 }, () => ({ model: 'civitai:1@2' })), [{ model: 'civitai:1@2', weight: 4 }]],
    };
    const base = { taskType: 'imageInference', taskUUID: uuids[0], positivePrompt: 'a', model: 'civitai:4384@128713', width: 512, height: 512 };
    for (const field of fieldNames) {
      for (const value of [...strangeValues, ...(boundaries[field] ?? []), ...airs, ...uuids]) {
        const task = { ...base, [field]: value };
        const expected = imageInferenceSchema.safeParse(task);
        const fast = parseCommonTask(task);
        if (fast !== undefined) expect({ field, value, fast }).toStrictEqual({ field, value, fast: expected.data });
      }
    }
  });

  it('leaves string and BigInt seeds and webhook URLs to the schema', () => {
    const base = { taskType: 'imageInference', taskUUID: uuids[0], positivePrompt: 'a', model: 'civitai:4384@128713', width: 512, height: 512 };
    expect(parseCommonTask({ ...base })).toBeDefined();
    for (const unusual of [{ seed: '42' }, { seed: 2n ** 60n }, { webhookURL: 'https://example.com/hook' }]) {
      expect(parseCommonTask({ ...base, ...unusual })).toBeUndefined();
      expect(imageInferenceSchema.safeParse({ ...base, ...unusual }).success).toBe(true);
    }
  });
});
