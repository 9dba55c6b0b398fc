import { describe, expect, it } from 'vitest';
import type { ModelRecord } from '../../../src/contracts/model-record.js';
import { createCatalogueResolver } from '../../../src/models/catalogue.js';
import { validateImageInferenceTasks } from '../../../src/tasks/image-inference/validate.js';
import { imageTask, incomingTasks, testRecords } from '../../helper.js';

/** Inspected embeddings with the trained words a registry lists, as resolution leaves them. */
function inspected(air: string, vectors: number, trainedWords: string[], family: 'sd1' | 'sdxl' = 'sd1'): ModelRecord {
  const sha = air.replace(/\D/g, '').padEnd(64, 'a').slice(0, 64);
  return {
    air,
    name: `Embedding ${air}`,
    type: 'textualInversion',
    family,
    source: 'registry',
    trainedWords,
    file: { sha256: sha, sizeBytes: 4096, format: 'safetensors', vectors, canonicalSha256: sha, canonicalSizeBytes: 4096 },
  };
}

const easyNegative = inspected('civitai:7808@9208', 2, ['EasyNegative, ', '(worst quality:1.4)']);
const badHands = inspected('civitai:116230@125849', 3, ['bad-hands-5']);
const long = Array.from({ length: 14 }, (_, index) => inspected(`civitai:9${index}@1`, 75, []));
const resolver = createCatalogueResolver([...testRecords, easyNegative, badHands, ...long]);
const dependencies = { resolver, limits: { maxEmbeddingsPerTask: 20 } };

async function verdictOf(task: Record<string, unknown>) {
  const [verdict] = await validateImageInferenceTasks(incomingTasks([task]), dependencies);
  if (!verdict) throw new Error('no verdict');
  return verdict;
}

const codes = (list: readonly { code: string; parameter?: string }[]) => list.map(({ code, parameter }) => [code, parameter]);

describe('prompt weighting syntax', () => {
  it('is taken as promptWeighting, and usePromptWeighting true means compel unless promptWeighting says otherwise', async () => {
    expect((await verdictOf(imageTask({ promptWeighting: 'sdEmbeds', positivePrompt: 'a (red:1.3) barn' }))).valid?.task.promptWeighting).toBe('sdEmbeds');
    expect((await verdictOf(imageTask({ usePromptWeighting: true, positivePrompt: 'a red++ barn' }))).valid?.task.promptWeighting).toBe('compel');
    expect((await verdictOf(imageTask({ usePromptWeighting: true, promptWeighting: 'sdEmbeds' }))).valid?.task.promptWeighting).toBe('sdEmbeds');
    expect((await verdictOf(imageTask({ usePromptWeighting: false }))).valid?.task.promptWeighting).toBeUndefined();
    expect(codes((await verdictOf(imageTask({ promptWeighting: 'a1111' }))).errors)).toEqual([['invalidParameter', 'promptWeighting']]);
  });

  it('refuses a prompt that does not parse, naming the prompt and the character, and keeps the other problems', async () => {
    const verdict = await verdictOf(imageTask({ promptWeighting: 'sdEmbeds', positivePrompt: 'a (red barn', negativePrompt: 'blurry:2)', width: 500 }));
    expect(codes(verdict.errors)).toEqual([
      ['invalidParameter', 'width'],
      ['invalidPromptSyntax', 'positivePrompt'],
      ['invalidPromptSyntax', 'negativePrompt'],
    ]);
    expect(verdict.errors[1]?.message).toMatch(/^positivePrompt \(promptWeighting "sdEmbeds"\): .*character 3/);
    expect(verdict.errors[1]?.retryable).toBe(false);
  });

  it('takes the same text without promptWeighting as literal text', async () => {
    expect((await verdictOf(imageTask({ positivePrompt: 'a (red barn' }))).errors).toEqual([]);
  });
});

describe('embeddings named in the prompt', () => {
  it('sends the trigger words found in the prompt of the embedding side, as the registry spells them', async () => {
    const verdict = await verdictOf(
      imageTask({
        positivePrompt: 'portrait, bad-hands-5 free',
        negativePrompt: '(easynegative:1.2), blurry',
        promptWeighting: 'sdEmbeds',
        embeddings: [
          { model: 'civitai:7808@9208', weight: -1 },
          { model: 'civitai:116230@125849', weight: 0.8 },
        ],
      }),
    );
    expect(verdict.errors).toEqual([]);
    expect(verdict.valid?.embeddings.map((entry) => entry.mentions)).toEqual([['EasyNegative'], ['bad-hands-5']]);
    // "(worst quality:1.4)" is syntax, not a word a prompt can name: it is never matched.
  });

  it('warns when a trigger word is in the other prompt and sends no mention for it', async () => {
    const verdict = await verdictOf(imageTask({ positivePrompt: 'easynegative style', embeddings: [{ model: 'civitai:7808@9208', weight: -1 }] }));
    expect(codes(verdict.warnings)).toEqual([['triggerWordOnOtherSide', 'embeddings[0].weight']]);
    expect(verdict.warnings[0]?.message).toContain('negativePrompt');
    expect(verdict.valid?.embeddings[0]?.mentions).toBeUndefined();
  });

  it('takes a marker in the right prompt, in any AIR spelling, as it is written', async () => {
    const marker = '<embedding:urn:air:sd1:embedding:civitai:7808@9208>';
    const verdict = await verdictOf(imageTask({ negativePrompt: `${marker}, blurry`, embeddings: [{ model: 'civitai:7808@9208', weight: -1.5 }] }));
    expect(verdict.errors).toEqual([]);
    expect(verdict.valid?.embeddings[0]?.mentions).toEqual([marker]);
  });

  it('refuses a marker for an embedding the task does not carry, or in the prompt its weight does not send it to', async () => {
    const missing = await verdictOf(imageTask({ positivePrompt: 'a <embedding:civitai:1@2> cat' }));
    expect(codes(missing.errors)).toEqual([['invalidEmbeddingMarker', 'positivePrompt']]);
    expect(missing.errors[0]?.message).toContain('embeddings[] has no such embedding');
    const wrongSide = await verdictOf(imageTask({ positivePrompt: 'a <embedding:civitai:7808@9208> cat', embeddings: [{ model: 'civitai:7808@9208', weight: -1 }] }));
    expect(codes(wrongSide.errors)).toEqual([['invalidEmbeddingMarker', 'positivePrompt']]);
    expect(wrongSide.errors[0]?.message).toContain('sends it to negativePrompt');
  });
});

describe('what the workers can hold', () => {
  it('refuses a task whose embeddings need more vectors together than a text encoder has slots', async () => {
    const embeddings = long.map((record) => ({ model: record.air, weight: 1 }));
    const verdict = await verdictOf(imageTask({ embeddings }));
    expect(codes(verdict.errors)).toEqual([['tooManyEmbeddingVectors', 'embeddings']]);
    expect(verdict.errors[0]).toMatchObject({ max: 1024, retryable: false });
    expect(verdict.errors[0]?.message).toContain('1050 vectors');
    expect((await verdictOf(imageTask({ embeddings: embeddings.slice(0, 13) }))).errors).toEqual([]);
  });

  it('says that clipSkip changes nothing on SDXL, and nothing about it on SD 1.5', async () => {
    const sdxl = await verdictOf(imageTask({ model: 'civitai:1003@1', clipSkip: 2 }));
    expect(codes(sdxl.warnings)).toEqual([['parameterNotApplied', 'clipSkip']]);
    expect(sdxl.warnings[0]?.message).toContain('penultimate');
    expect((await verdictOf(imageTask({ clipSkip: 2 }))).warnings).toEqual([]);
  });
});
