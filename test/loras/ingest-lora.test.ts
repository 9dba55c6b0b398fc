import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RegistryFile } from '../../src/contracts/registry-file.js';
import { inspectLora, LoraRejected } from '../../src/loras/ingest-lora.js';
import { safetensorsFile } from '../support/embedding-fixtures.js';
import { startFakeRegistry, type FakeRegistry } from '../support/fake-registry.js';
import { loraFile } from '../support/lora-fixtures.js';

let registry: FakeRegistry;
beforeAll(async () => {
  registry = await startFakeRegistry();
});
afterAll(async () => {
  await registry.close();
});
beforeEach(() => registry.setBehaviour({ ranges: true }));

function listed(name: string, bytes: Uint8Array, overrides: Partial<RegistryFile> = {}): RegistryFile {
  return {
    name,
    sizeBytes: bytes.byteLength,
    format: 'SafeTensor',
    sha256: createHash('sha256').update(bytes).digest('hex'),
    downloadUrl: registry.addFile(`/loras/${name}`, bytes),
    primary: true,
    pickleScan: 'Success',
    virusScan: 'Success',
    ...overrides,
  };
}

/** A LoRA with a large tensor behind its header, so reading the whole file would show. */
function largeSdxlLora(): Uint8Array {
  const small = loraFile('sdxl', 'kohya');
  const header = Number(new DataView(small.buffer, small.byteOffset, 8).getBigUint64(0, true));
  const tensors = JSON.parse(new TextDecoder().decode(small.subarray(8, 8 + header))) as Record<string, { shape: number[] }>;
  expect(Object.keys(tensors).length).toBeGreaterThan(3);
  return safetensorsFile({
    'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight': { shape: [2, 2048], values: new Float32Array(4096).fill(0.01) },
    'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight': { shape: [2048, 2048], values: new Float32Array(2048 * 2048).fill(0.01) },
  });
}

const dependencies = (reads: boolean[]) => ({ timeoutMs: 5000, credentials: undefined, onHeaderRead: (ranged: boolean) => reads.push(ranged) });

describe('reading a LoRA by its header', () => {
  it('takes two ranged reads from a server that honours ranges, and never the file', async () => {
    const bytes = largeSdxlLora();
    const reads: boolean[] = [];
    const before = registry.calls.bytesSent();
    const inspected = await inspectLora(listed('style-ranged.safetensors', bytes), 'unknown', dependencies(reads));
    expect(inspected.family).toBe('sdxl');
    expect(inspected.facts).toMatchObject({ format: 'safetensors', naming: 'kohya', sizeBytes: bytes.byteLength, labelledFamily: 'unknown' });
    expect(reads).toEqual([true, true]);
    expect(registry.calls.rangeReads('/loras/style-ranged.safetensors')).toBe(2);
    expect(registry.calls.bytesSent() - before).toBeLessThan(4096);
    expect(registry.calls.downloads('/loras/style-ranged.safetensors')).toBe(0);
  });

  it('reads only the prefix from a server that ignores ranges, and hangs up', async () => {
    registry.setBehaviour({ ranges: false });
    const bytes = largeSdxlLora();
    const reads: boolean[] = [];
    const before = registry.calls.bytesSent();
    const inspected = await inspectLora(listed('style-plain.safetensors', bytes), 'sdxl', dependencies(reads));
    expect(inspected.family).toBe('sdxl');
    expect(inspected.facts.labelledFamily).toBeUndefined();
    expect(reads).toEqual([false, false]);
    expect(registry.calls.downloads('/loras/style-plain.safetensors')).toBe(0);
    expect(registry.calls.bytesSent() - before).toBeLessThan(bytes.byteLength / 2);
  });

  it.each([
    ['kohya', 'sd1'],
    ['peft', 'sd1'],
    ['kohya', 'sdxl'],
    ['peft', 'sdxl'],
  ] as const)('gives the family of a %s %s LoRA over the wire', async (naming, family) => {
    const inspected = await inspectLora(listed(`${naming}-${family}.safetensors`, loraFile(family, naming)), 'unknown', dependencies([]));
    expect(inspected).toMatchObject({ family, facts: { naming } });
  });

  it('refuses a pickle LoRA, a file without a SHA-256, a flagged file and a truncated header, each with its code', async () => {
    const bytes = loraFile('sd1', 'kohya');
    const refusal = async (file: RegistryFile) => {
      const error = await inspectLora(file, 'sd1', dependencies([])).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(LoraRejected);
      return error as LoraRejected;
    };
    expect((await refusal(listed('old.pt', bytes, { format: 'PickleTensor' }))).code).toBe('loraFormatUnsupported');
    expect((await refusal(listed('nohash.safetensors', bytes, { sha256: undefined }))).code).toBe('loraFileMissing');
    expect((await refusal(listed('flagged.safetensors', bytes, { pickleScan: 'Danger' }))).code).toBe('loraFlaggedByScan');
    const truncated = await refusal(listed('short.safetensors', bytes.subarray(0, 40)));
    expect(truncated.code).toBe('loraFileUnreadable');
    expect(truncated.message).toMatch(/header claims \d+ bytes, but the file ends first/);
  });
});
