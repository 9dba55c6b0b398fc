import { describe, expect, it } from 'vitest';
import { createCatalogueResolver } from '../../../src/models/catalogue.js';
import { fieldsNotApplied, unsupportedFeatures } from '../../../src/tasks/image-inference/runware-fields.js';
import { validateImageInferenceTasks } from '../../../src/tasks/image-inference/validate.js';
import { imageTask, incomingTasks, testRecords } from '../../helper.js';

const dependencies = { resolver: createCatalogueResolver(testRecords), limits: { maxEmbeddingsPerTask: 10 } };

async function verdictOf(task: Record<string, unknown>) {
  const [verdict] = await validateImageInferenceTasks(incomingTasks([task]), dependencies);
  if (!verdict) throw new Error('no verdict');
  return verdict;
}

/**
 * Every imageInference field the published Runware clients can send (sdk-js's IRequestImage, runware-sdk's
 * task map, runware's IImageInference): none may be answered unknownParameter.
 */
const documentedFields = [
  'taskType', 'taskUUID', 'positivePrompt', 'negativePrompt', 'model', 'width', 'height', 'steps', 'CFGScale', 'seed', 'scheduler', 'clipSkip',
  'numberResults', 'outputType', 'outputFormat', 'outputQuality', 'checkNSFW', 'includeCost', 'deliveryMethod', 'webhookURL', 'lora', 'embeddings',
  'uploadEndpoint', 'seedImage', 'maskImage', 'maskMargin', 'strength', 'referenceImages', 'inputs', 'outpaint', 'controlNet', 'ipAdapters',
  'instantID', 'puLID', 'pulid', 'photoMaker', 'acePlusPlus', 'refiner', 'hiresFix', 'upscaleFactor', 'resolution', 'vae', 'lycoris',
  'trueCFGScale', 'structuredPrompt', 'settings', 'providerSettings', 'ultralytics', 'advancedFeatures', 'promptWeighting', 'usePromptWeighting',
  'acceleration', 'acceleratorOptions', 'useCache', 'routing', 'ttl', 'safety',
];

const sample: Record<string, unknown> = {
  uploadEndpoint: 'https://example.com/upload', seedImage: 'a-uuid', maskImage: 'a-uuid', maskMargin: 32, strength: 0.7, referenceImages: ['x'],
  inputs: { image: 'x' }, outpaint: { top: 64 }, controlNet: [{ model: 'civitai:1@1', guideImage: 'x' }], ipAdapters: [{ model: 'x', guideImage: 'y' }],
  instantID: { inputImage: 'x' }, puLID: { inputImages: ['x'] }, pulid: { inputImages: ['x'] }, photoMaker: { images: ['x'] }, acePlusPlus: { type: 'portrait' },
  refiner: { model: 'civitai:1@1' }, hiresFix: true, upscaleFactor: 2, resolution: '1K', vae: 'civitai:1@1', lycoris: [{ model: 'x', weight: 1 }],
  trueCFGScale: 3, structuredPrompt: {}, settings: {}, providerSettings: { bfl: {} }, ultralytics: {}, advancedFeatures: { layerDiffuse: true },
  acceleration: 'high', acceleratorOptions: { teaCache: true }, useCache: true, routing: {}, ttl: 60,
};

describe('documented Runware fields', () => {
  it('are each answered on purpose: none is an unknownParameter', async () => {
    const answered = new Set([...Object.keys(unsupportedFeatures), ...Object.keys(fieldsNotApplied), 'usePromptWeighting', 'safety']);
    for (const field of documentedFields) {
      const verdict = await verdictOf(imageTask(field in sample ? { [field]: sample[field] } : {}));
      expect(verdict.errors.filter((error) => error.code === 'unknownParameter'), field).toEqual([]);
      if (!(field in sample)) continue;
      expect(answered.has(field), field).toBe(true);
    }
  });

  it('refuse what the workers do not do, naming it, and keep the other problems of the task', async () => {
    const verdict = await verdictOf(imageTask({ seedImage: 'x', strength: 0.5, controlNet: [], width: 500 }));
    expect(verdict.errors.map((error) => [error.code, error.parameter])).toEqual([
      ['unsupportedFeature', 'seedImage'],
      ['unsupportedFeature', 'strength'],
      ['unsupportedFeature', 'controlNet'],
      ['invalidParameter', 'width'],
    ]);
    expect(verdict.errors[0]?.message).toBe("seedImage: image-to-image (a seed image) is not something clipgate's GPU workers do; clipgate generates images from text (with embeddings and LoRAs); send the task without it.");
    expect(verdict.valid).toBeUndefined();
  });

  it('take what changes nothing about the image, with a parameterNotApplied warning', async () => {
    const verdict = await verdictOf(imageTask({ acceleration: 'high', ttl: 60 }));
    expect(verdict.errors).toEqual([]);
    expect(verdict.valid).toBeDefined();
    expect(verdict.warnings.map((warning) => [warning.code, warning.parameter])).toEqual([
      ['parameterNotApplied', 'acceleration'],
      ['parameterNotApplied', 'ttl'],
    ]);
  });

  it('read null as not set', async () => {
    const verdict = await verdictOf(imageTask({ controlNet: null, refiner: null, ttl: null }));
    expect(verdict.errors).toEqual([]);
    expect(verdict.warnings).toEqual([]);
  });

  it('take usePromptWeighting false as plain prompts, and true as compel syntax (what it meant before promptWeighting)', async () => {
    expect((await verdictOf(imageTask({ usePromptWeighting: false }))).valid?.task.promptWeighting).toBeUndefined();
    expect((await verdictOf(imageTask({ usePromptWeighting: true }))).valid?.task.promptWeighting).toBe('compel');
    expect((await verdictOf(imageTask({ usePromptWeighting: 'yes' }))).errors).toEqual([expect.objectContaining({ code: 'invalidParameter', parameter: 'usePromptWeighting' })]);
  });

  it('read safety.checkContent as checkNSFW, and refuse the other safety settings', async () => {
    expect((await verdictOf(imageTask({ safety: { checkContent: true } }))).valid?.task.checkNSFW).toBe(true);
    expect((await verdictOf(imageTask({ safety: { checkContent: false }, checkNSFW: false }))).valid?.task.checkNSFW).toBe(false);
    const conflict = await verdictOf(imageTask({ safety: { checkContent: true }, checkNSFW: false }));
    expect(conflict.errors).toEqual([expect.objectContaining({ code: 'invalidParameter', parameter: 'safety.checkContent' })]);
    const other = await verdictOf(imageTask({ safety: { checkContent: true, mode: 'strict' } }));
    expect(other.errors).toEqual([expect.objectContaining({ code: 'unsupportedFeature', parameter: 'safety.mode' })]);
    expect((await verdictOf(imageTask({ safety: 'on' }))).errors).toEqual([expect.objectContaining({ code: 'invalidParameter', parameter: 'safety' })]);
  });

  it('still report a typo as unknownParameter, with a suggestion', async () => {
    const verdict = await verdictOf(imageTask({ seedImage: 'x', outputQualty: 80 }));
    expect(verdict.errors).toContainEqual(expect.objectContaining({ code: 'unknownParameter', parameter: 'outputQualty', message: expect.stringContaining('Did you mean "outputQuality"') }));
  });

  it('check outputQuality and checkNSFW, and warn that PNG takes no quality', async () => {
    expect((await verdictOf(imageTask({ outputQuality: 19 }))).errors).toEqual([expect.objectContaining({ code: 'parameterOutOfRange', parameter: 'outputQuality', min: 20 })]);
    expect((await verdictOf(imageTask({ outputQuality: 100 }))).errors).toEqual([expect.objectContaining({ code: 'parameterOutOfRange', parameter: 'outputQuality', max: 99 })]);
    expect((await verdictOf(imageTask({ checkNSFW: 'yes' }))).errors).toEqual([expect.objectContaining({ code: 'invalidParameter', parameter: 'checkNSFW' })]);
    const png = await verdictOf(imageTask({ outputFormat: 'PNG', outputQuality: 60 }));
    expect(png.warnings).toEqual([expect.objectContaining({ code: 'parameterNotApplied', parameter: 'outputQuality' })]);
    // What @runware/ai-sdk-provider always sends: PNG at the default quality asks for nothing.
    expect((await verdictOf(imageTask({ outputFormat: 'PNG', outputQuality: 95, checkNSFW: false }))).warnings).toEqual([]);
  });

  it('remember a seed sent as a string, so its images report theirs as strings', async () => {
    expect((await verdictOf(imageTask({ seed: '18446744073709551615' }))).valid?.task).toMatchObject({ seed: 18446744073709551615n, seedAsText: true });
    expect((await verdictOf(imageTask({ seed: 42 }))).valid?.task.seedAsText).toBeUndefined();
  });
});
