import { describe, expect, it } from 'vitest';
import { readSafetensors } from '../../src/embeddings/safetensors-reader.js';
import { classifyLora } from '../../src/loras/lora-layout.js';
import { loraFile, type LoraFamily, type LoraNaming } from '../support/lora-fixtures.js';

function layoutOf(bytes: Uint8Array) {
  const file = readSafetensors(bytes);
  return classifyLora([...file.tensors].map(([name, tensor]) => ({ name, shape: tensor.shape })));
}

describe('the family of a LoRA file, from its header', () => {
  it.each([
    ['sd1', 'kohya'],
    ['sd1', 'peft'],
    ['sdxl', 'kohya'],
    ['sdxl', 'peft'],
    ['sd2', 'kohya'],
    ['flux', 'kohya'],
    ['flux', 'peft'],
  ] as [LoraFamily, LoraNaming][])('%s in %s naming', (family, naming) => {
    const layout = layoutOf(loraFile(family, naming));
    expect(layout).toMatchObject({ family, naming });
  });

  it('reads the cross-attention width: 768 is SD 1.x, 2048 SDXL, whatever the file calls itself', () => {
    expect(layoutOf(loraFile('sd1', 'peft', { metadata: { ss_base_model_version: 'sdxl_base_v1-0' } })).evidence).toMatch(/768-wide text .*attn2\.to_k/);
    expect(layoutOf(loraFile('sdxl', 'kohya')).evidence).toMatch(/2048-wide/);
  });

  it('tells a text-encoder-only LoRA by its encoders: two are SDXL, one 768 wide SD 1.x', () => {
    expect(layoutOf(loraFile('sdxl', 'kohya', { textEncoderOnly: true })).family).toBe('sdxl');
    expect(layoutOf(loraFile('sdxl', 'peft', { textEncoderOnly: true })).family).toBe('sdxl');
    expect(layoutOf(loraFile('sd1', 'kohya', { textEncoderOnly: true })).family).toBe('sd1');
  });

  it('says so when nothing in the file tells', () => {
    const layout = classifyLora([{ name: 'something.weight', shape: [4, 4] }]);
    expect(layout.family).toBeUndefined();
    expect(layout.evidence).toMatch(/no UNet cross-attention or text-encoder weights/);
  });
});
