import { describe, expect, it } from 'vitest';
import { createCatalogueResolver } from '../../../src/models/catalogue.js';
import type { ModelResolver } from '../../../src/contracts/model-resolver.js';
import { MAX_ERRORS_PER_TASK, validateImageInferenceTasks, type ValidationDependencies } from '../../../src/tasks/image-inference/validate.js';
import { imageTask, incomingTasks, testRecords } from '../../helper.js';

const resolver = createCatalogueResolver(testRecords);
const limits = { maxEmbeddingsPerTask: 10 };

/** imageInference tasks as the task service hands them over (it answers non-objects and other task types itself). */
const validateTasks = (tasks: readonly Record<string, unknown>[], dependencies: ValidationDependencies) =>
  validateImageInferenceTasks(incomingTasks(tasks), dependencies);

async function verdictOf(task: Record<string, unknown>) {
  const [verdict] = await validateTasks([task], { resolver, limits });
  if (!verdict) throw new Error('no verdict');
  return verdict;
}

const codes = (verdict: { errors: readonly { code: string }[] }) => verdict.errors.map((error) => error.code);

describe('structural checks', () => {
  it('accepts a complete task and fills in defaults', async () => {
    const verdict = await verdictOf(imageTask({ embeddings: [{ model: 'civitai:7808@9208' }] }));
    expect(verdict.errors).toEqual([]);
    expect(verdict.valid?.task).toMatchObject({
      steps: 20,
      CFGScale: 7,
      numberResults: 1,
      outputType: 'URL',
      outputFormat: 'JPG',
      deliveryMethod: 'sync',
      scheduler: 'Default',
      clipSkip: 0,
      includeCost: false,
      lora: [],
    });
    expect(verdict.valid?.task.embeddings[0]?.weight).toBe(1);
    expect(verdict.valid?.task.model.canonical).toBe('civitai:4384@128713');
  });

  it('reports every structural problem of a task, each with its parameter path', async () => {
    const verdict = await verdictOf(
      imageTask({
        width: 500,
        height: 4096,
        steps: 0,
        CFGScale: 'high',
        numberResults: 21,
        outputFormat: 'GIF',
        positivePrompt: '',
        clipSkip: 1.5,
        embeddings: [{ model: 'civitai:7808@9208', weight: 9 }],
      }),
    );
    const byParameter = Object.fromEntries(verdict.errors.map((error) => [error.parameter, error]));
    expect(byParameter['width']).toMatchObject({ code: 'invalidParameter', message: expect.stringContaining('nearest: 512') });
    expect(byParameter['height']).toMatchObject({ code: 'parameterOutOfRange', max: 2048 });
    expect(byParameter['steps']).toMatchObject({ code: 'parameterOutOfRange', min: 1 });
    expect(byParameter['CFGScale']).toMatchObject({ code: 'invalidParameter', message: expect.stringContaining('"high"') });
    expect(byParameter['numberResults']).toMatchObject({ code: 'parameterOutOfRange', max: 20 });
    expect(byParameter['outputFormat']).toMatchObject({ code: 'invalidParameter', allowed: ['PNG', 'JPG', 'WEBP'] });
    expect(byParameter['positivePrompt']).toMatchObject({ code: 'parameterOutOfRange', min: 1 });
    expect(byParameter['clipSkip']).toMatchObject({ code: 'invalidParameter' });
    expect(byParameter['embeddings[0].weight']).toMatchObject({ code: 'parameterOutOfRange', max: 4 });
    expect(verdict.valid?.task).toBeUndefined();
    for (const error of verdict.errors) expect(error).toMatchObject({ taskType: 'imageInference', taskIndex: 0, retryable: false });
  });

  it('names a missing required parameter', async () => {
    const task = imageTask();
    delete task['positivePrompt'];
    delete task['model'];
    const verdict = await verdictOf(task);
    expect(verdict.errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ code: 'missingParameter', parameter: 'positivePrompt' }),
        expect.objectContaining({ code: 'missingParameter', parameter: 'model' }),
      ]),
    );
  });

  it('reports unknown fields, with a suggestion for a typo, at any depth', async () => {
    const verdict = await verdictOf(imageTask({ CFGscale: 7, embeddings: [{ model: 'civitai:7808@9208', wieght: 1 }], colour: 'red' }));
    expect(verdict.errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ code: 'unknownParameter', parameter: 'CFGscale', message: expect.stringContaining('Did you mean "CFGScale"') }),
        expect.objectContaining({ code: 'unknownParameter', parameter: 'embeddings[0].wieght', message: expect.stringContaining('"weight"') }),
        expect.objectContaining({ code: 'unknownParameter', parameter: 'colour', message: expect.stringContaining('Remove it') }),
      ]),
    );
  });

  it('treats __proto__ and constructor keys as unknown parameters without touching any prototype', async () => {
    const task = JSON.parse(JSON.stringify(imageTask()).replace(/^\{/, '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},'));
    const verdict = await verdictOf(task);
    expect(verdict.errors.map((error) => error.parameter).sort()).toEqual(['__proto__', 'constructor']);
    expect(codes(verdict)).toEqual(['unknownParameter', 'unknownParameter']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('refuses malformed AIRs and accepts the URN form, normalised', async () => {
    const bad = await verdictOf(imageTask({ model: 'dreamshaper', embeddings: [{ model: 'civitai:7808' }] }));
    expect(bad.errors).toEqual([
      expect.objectContaining({ code: 'invalidAir', parameter: 'model', message: expect.stringContaining('source:id@version') }),
      expect.objectContaining({ code: 'invalidAir', parameter: 'embeddings[0].model' }),
    ]);
    const urn = await verdictOf(imageTask({ model: 'urn:air:sd1:checkpoint:civitai:4384@128713', embeddings: [{ model: 'urn:air:sd1:embedding:CivitAI:7808@9208' }] }));
    expect(urn.errors).toEqual([]);
    expect(urn.valid?.task.embeddings[0]?.model.canonical).toBe('civitai:7808@9208');
  });

  it('refuses a taskUUID that is not a UUID and a webhook that is not http(s)', async () => {
    const verdict = await verdictOf(imageTask({ taskUUID: 'task-1', webhookURL: 'ftp://example.com/x' }));
    expect(verdict.errors).toEqual([
      expect.objectContaining({ code: 'invalidParameter', parameter: 'taskUUID', taskUUID: 'task-1' }),
      expect.objectContaining({ code: 'invalidParameter', parameter: 'webhookURL' }),
    ]);
  });

  it('never echoes a huge string back whole', async () => {
    const verdict = await verdictOf(imageTask({ positivePrompt: 'x'.repeat(100_000), scheduler: 'y'.repeat(100_000) }));
    expect(codes(verdict)).toEqual(['parameterOutOfRange', 'invalidParameter']);
    expect(verdict.errors[0]).toMatchObject({ max: 3000, message: expect.stringContaining('got 100000') });
    for (const error of verdict.errors) expect(error.message.length).toBeLessThan(2000);
  });

  it('caps the errors of a junk task', async () => {
    const junk = Object.fromEntries(Array.from({ length: 500 }, (_, index) => [`field${index}`, index]));
    const verdict = await verdictOf(imageTask(junk));
    expect(verdict.errors).toHaveLength(MAX_ERRORS_PER_TASK);
  });
});

describe('seeds', () => {
  it('keeps 64-bit seeds exactly, whether BigInt, decimal string or safe number', async () => {
    const max = await verdictOf(imageTask({ seed: 18446744073709551615n }));
    expect(max.valid?.task.seed).toBe(18446744073709551615n);
    const text = await verdictOf(imageTask({ seed: '9007199254740993' }));
    expect(text.valid?.task.seed).toBe(9007199254740993n);
    const small = await verdictOf(imageTask({ seed: 1234 }));
    expect(small.valid?.task.seed).toBe(1234n);
  });

  it('refuses seeds that are negative, fractional, beyond 2^64 or already rounded', async () => {
    for (const seed of [-1, 1.5, 18446744073709551616n, '18446744073709551616', 'abc', 2 ** 60]) {
      const verdict = await verdictOf(imageTask({ seed }));
      expect(verdict.errors, String(seed)).toEqual([expect.objectContaining({ code: 'parameterOutOfRange', parameter: 'seed', min: 0 })]);
    }
  });
});

describe('where embeddings are allowed', () => {
  it.each([
    ['runware:101@1', 'flux', 'FLUX.1 [dev]'],
    ['runware:100@1', 'flux', 'FLUX.1 [schnell]'],
    ['runware:97@2', 'hidream', 'HiDream'],
    ['runware:5@1', 'sd3', 'Stable Diffusion 3'],
    ['runware:108@1', 'qwen', 'Qwen-Image'],
    ['recraft:v4.1-pro@0', 'third-party', 'recraft:v4.1-pro@0'],
    ['openai:1@1', 'third-party', 'openai:1@1'],
    ['civitai:1004@1', 'sd2', 'Test SD2 Checkpoint'],
  ])('refuses embeddings on %s (%s) and says what to use instead', async (model, family, name) => {
    const verdict = await verdictOf(imageTask({ model, embeddings: [{ model: 'civitai:7808@9208' }, { model: 'civitai:1001@1' }] }));
    expect(verdict.errors).toEqual([
      expect.objectContaining({ code: 'unsupportedEmbeddingArchitecture', parameter: 'embeddings', allowed: ['sd1', 'sdxl'] }),
    ]);
    const message = verdict.errors[0]?.message ?? '';
    expect(message).toContain(model);
    expect(message).toContain(`"${family}"`);
    expect(message).toContain(name);
    expect(message).toMatch(/LoRA/);
    expect(message).toMatch(/IP-Adapter/);
  });

  it('accepts the same models without embeddings', async () => {
    for (const model of ['runware:101@1', 'recraft:v4.1-pro@0', 'runware:97@1']) {
      expect((await verdictOf(imageTask({ model }))).errors).toEqual([]);
    }
  });

  it('accepts SD 1.5 embeddings on SD 1.5 and SDXL embeddings on SDXL', async () => {
    expect((await verdictOf(imageTask({ embeddings: [{ model: 'civitai:7808@9208' }, { model: 'civitai:1000@1', weight: -0.5 }] }))).errors).toEqual([]);
    expect((await verdictOf(imageTask({ model: 'civitai:101055@128078', embeddings: [{ model: 'civitai:118418@134583' }] }))).errors).toEqual([]);
  });

  it('refuses an embedding of another family, naming both', async () => {
    const verdict = await verdictOf(imageTask({ model: 'civitai:101055@128078', embeddings: [{ model: 'civitai:118418@134583' }, { model: 'civitai:7808@9208' }] }));
    expect(verdict.errors).toEqual([expect.objectContaining({ code: 'incompatibleEmbeddingFamily', parameter: 'embeddings[1].model', allowed: ['sdxl'] })]);
    const message = verdict.errors[0]?.message ?? '';
    expect(message).toContain('civitai:7808@9208');
    expect(message).toContain('civitai:101055@128078');
    expect(message).toContain('"sd1"');
    expect(message).toContain('"sdxl"');
  });

  it('refuses an SD 2 embedding on an SD 1.5 model', async () => {
    const verdict = await verdictOf(imageTask({ embeddings: [{ model: 'civitai:1005@1' }] }));
    expect(codes(verdict)).toEqual(['incompatibleEmbeddingFamily']);
  });

  it('refuses a LoRA given as an embedding, saying to use lora[]', async () => {
    const verdict = await verdictOf(imageTask({ model: 'civitai:1003@1', embeddings: [{ model: 'civitai:1002@1' }] }));
    expect(verdict.errors).toEqual([expect.objectContaining({ code: 'notAnEmbedding', parameter: 'embeddings[0].model', message: expect.stringContaining('lora[]') })]);
  });

  it('refuses a checkpoint given as an embedding and an embedding given as the model or a LoRA', async () => {
    const verdict = await verdictOf(imageTask({ model: 'civitai:7808@9208', embeddings: [{ model: 'civitai:4384@128713' }], lora: [{ model: 'civitai:1000@1' }] }));
    expect(verdict.errors).toEqual([
      expect.objectContaining({ code: 'notABaseModel', parameter: 'model', message: expect.stringContaining('embeddings[]') }),
      expect.objectContaining({ code: 'notAnEmbedding', parameter: 'embeddings[0].model', message: expect.stringContaining('goes in model') }),
      expect.objectContaining({ code: 'notALora', parameter: 'lora[0].model', message: expect.stringContaining('embeddings[]') }),
    ]);
  });

  it('accepts a known LoRA and refuses unknown models wherever they are named', async () => {
    expect((await verdictOf(imageTask({ model: 'civitai:1003@1', lora: [{ model: 'civitai:1002@1', weight: 0.8 }] }))).errors).toEqual([]);
    const verdict = await verdictOf(imageTask({ model: 'civitai:9@9', embeddings: [{ model: 'civitai:8@8' }], lora: [{ model: 'civitai:7@7' }] }));
    expect(verdict.errors.map((error) => [error.code, error.parameter])).toEqual([
      ['unknownModel', 'model'],
      ['unknownModel', 'embeddings[0].model'],
      ['unknownModel', 'lora[0].model'],
    ]);
  });

  it('refuses the same embedding twice', async () => {
    const verdict = await verdictOf(imageTask({ embeddings: [{ model: 'civitai:7808@9208' }, { model: 'civitai:1000@1' }, { model: 'urn:air:sd1:embedding:civitai:7808@9208' }] }));
    expect(verdict.errors).toEqual([
      expect.objectContaining({ code: 'duplicateEmbedding', parameter: 'embeddings[2].model', message: expect.stringContaining('embeddings[0]') }),
    ]);
  });

  it('refuses more embeddings than the configured limit', async () => {
    const many = Array.from({ length: 4 }, (_, index) => ({ model: `civitai:${2000 + index}@1` }));
    const [verdict] = await validateTasks([imageTask({ embeddings: many })], { resolver, limits: { maxEmbeddingsPerTask: 3 } });
    expect(verdict?.errors[0]).toMatchObject({ code: 'tooManyEmbeddings', parameter: 'embeddings', max: 3 });
  });

  it('still checks embeddings when other fields of the task are wrong', async () => {
    const verdict = await verdictOf(imageTask({ model: 'runware:101@1', width: 100, embeddings: [{ model: 'civitai:7808@9208' }] }));
    expect(codes(verdict).sort()).toEqual(['invalidParameter', 'parameterOutOfRange', 'unsupportedEmbeddingArchitecture']);
  });
});

describe('warnings', () => {
  it('warns about weights beyond ±2, weight 0 and more than 3 embeddings, and still accepts', async () => {
    const verdict = await verdictOf(
      imageTask({
        model: 'civitai:1003@1',
        embeddings: [
          { model: 'civitai:1001@1', weight: 2.5 },
          { model: 'urn:air:sdxl:embedding:civitai:118418@134583', weight: -3 },
          { model: 'civitai:3000@1', weight: 0 },
          { model: 'civitai:3001@1' },
        ],
      }),
    );
    // civitai:3000@1 and 3001@1 are unknown; the warnings do not depend on that.
    expect(verdict.warnings.map((warning) => [warning.code, warning.parameter])).toEqual([
      ['manyEmbeddings', 'embeddings'],
      ['extremeEmbeddingWeight', 'embeddings[0].weight'],
      ['extremeEmbeddingWeight', 'embeddings[1].weight'],
      ['ineffectiveEmbeddingWeight', 'embeddings[2].weight'],
    ]);
  });

  it('takes async delivery and a webhook without a warning: both are honoured now', async () => {
    const verdict = await verdictOf(imageTask({ deliveryMethod: 'async', webhookURL: 'https://client.example/hook' }));
    expect(verdict.errors).toEqual([]);
    expect(verdict.warnings).toEqual([]);
    expect((await verdictOf(imageTask({ deliveryMethod: 'sync' }))).warnings).toEqual([]);
  });

  it('warns that a negative embedding has no effect at CFGScale ≤ 1', async () => {
    const verdict = await verdictOf(imageTask({ CFGScale: 1, embeddings: [{ model: 'civitai:7808@9208', weight: -1 }] }));
    expect(verdict.errors).toEqual([]);
    expect(verdict.warnings).toEqual([expect.objectContaining({ code: 'negativeEmbeddingWithoutGuidance', parameter: 'embeddings[0].weight' })]);
    const guided = await verdictOf(imageTask({ CFGScale: 1.5, embeddings: [{ model: 'civitai:7808@9208', weight: -1 }] }));
    expect(guided.warnings).toEqual([]);
  });
});

describe('the request as a whole', () => {
  it('resolves all AIRs of a request in one call', async () => {
    const calls: string[][] = [];
    const counting: ModelResolver = {
      resolveMany: async (airs) => {
        calls.push(airs.map((air) => air.canonical));
        return resolver.resolveMany(airs);
      },
    };
    await validateTasks(
      [imageTask({ embeddings: [{ model: 'civitai:7808@9208' }] }), imageTask({ embeddings: [{ model: 'civitai:7808@9208' }, { model: 'civitai:1000@1' }] })],
      { resolver: counting, limits },
    );
    expect(calls).toEqual([['civitai:4384@128713', 'civitai:7808@9208', 'civitai:1000@1']]);
  });
});
