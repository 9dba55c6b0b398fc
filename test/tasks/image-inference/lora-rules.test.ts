import { describe, expect, it } from 'vitest';
import type { ModelRecord } from '../../../src/contracts/model-record.js';
import { createCatalogueResolver } from '../../../src/models/catalogue.js';
import { validateImageInferenceTasks } from '../../../src/tasks/image-inference/validate.js';
import { imageTask, incomingTasks, testRecords } from '../../helper.js';

function lora(air: string, family: 'sd1' | 'sdxl' | 'flux', withFile = true): ModelRecord {
  return {
    air,
    name: `LoRA ${air}`,
    type: 'lora',
    family,
    source: 'registry',
    ...(withFile && {
      loraFile: { sha256: 'c'.repeat(64), sizeBytes: 1 << 20, format: 'safetensors', downloadUrl: `https://civitai.com/api/download/models/${air}`, naming: 'kohya', evidence: `its UNet cross-attention reads ${family === 'sd1' ? 768 : 2048}-wide text` },
    }),
  } as ModelRecord;
}

const resolver = createCatalogueResolver([
  ...testRecords,
  lora('civitai:2001@1', 'sd1'),
  lora('civitai:2002@1', 'sdxl'),
  lora('civitai:2003@1', 'flux'),
  { air: 'civitai:2004@1', name: 'Flux Dev', type: 'checkpoint', family: 'flux', source: 'operator' },
]);

async function verdictOf(task: Record<string, unknown>) {
  const [verdict] = await validateImageInferenceTasks(incomingTasks([task]), { resolver, limits: { maxEmbeddingsPerTask: 10 } });
  if (!verdict) throw new Error('no verdict');
  return verdict;
}

describe('LoRAs in validation', () => {
  it('refuses an SD 1.5 LoRA on an SDXL model before dispatch, saying what its file says', async () => {
    const verdict = await verdictOf(imageTask({ model: 'civitai:1003@1', lora: [{ model: 'civitai:2001@1', weight: 0.8 }] }));
    expect(verdict.errors.map(({ code, parameter }) => [code, parameter])).toEqual([['incompatibleLoraFamily', 'lora[0].model']]);
    expect(verdict.errors[0]?.message).toMatch(/trained for .*"sd1".*its file says so: its UNet cross-attention reads 768-wide text.*"sdxl"/);
    expect(verdict.valid).toBeUndefined();
  });

  it('takes a LoRA of the base model family, with its record, beside embeddings', async () => {
    const verdict = await verdictOf(imageTask({ model: 'civitai:1003@1', lora: [{ model: 'civitai:2002@1', weight: -1.2 }], embeddings: [{ model: 'civitai:1001@1', weight: -1 }] }));
    expect(verdict.errors).toEqual([]);
    expect(verdict.valid?.loras.map((entry) => [entry.record.air, entry.weight])).toEqual([['civitai:2002@1', -1.2]]);
  });

  it('validates a LoRA on a non-CLIP model by family too: a FLUX LoRA fits FLUX, an SDXL one does not', async () => {
    expect((await verdictOf(imageTask({ model: 'civitai:2004@1', lora: [{ model: 'civitai:2003@1', weight: 1 }] }))).errors).toEqual([]);
    const wrong = await verdictOf(imageTask({ model: 'civitai:2004@1', lora: [{ model: 'civitai:2002@1', weight: 1 }] }));
    expect(wrong.errors.map((error) => error.code)).toEqual(['incompatibleLoraFamily']);
  });

  it('warns that weight 0 has no effect', async () => {
    const verdict = await verdictOf(imageTask({ model: 'civitai:1003@1', lora: [{ model: 'civitai:2002@1', weight: 0 }] }));
    expect(verdict.warnings.map(({ code, parameter }) => [code, parameter])).toEqual([['ineffectiveLoraWeight', 'lora[0].weight']]);
  });
});
