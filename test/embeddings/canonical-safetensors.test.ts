import { describe, expect, it } from 'vitest';
import { toCanonicalSafetensors } from '../../src/embeddings/canonical-safetensors.js';
import { inspectEmbeddingFile, type InspectedEmbedding } from '../../src/embeddings/inspect-embedding.js';
import { readSafetensors } from '../../src/embeddings/safetensors-reader.js';
import { a1111PtFile, diffusersBinFile, kohyaSafetensorsFile, randomVectors, sdxlSafetensorsFile } from '../support/embedding-fixtures.js';

function header(bytes: Uint8Array): { length: number; json: Record<string, unknown> } {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { length, json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as Record<string, unknown> };
}

const sources: [string, () => Uint8Array][] = [
  ['an SD 1.5 A1111 .pt (F16)', () => a1111PtFile(randomVectors(3, 768, 1), 3, 768, { dtype: 'F16' })],
  ['an SD 2.x kohya safetensors', () => kohyaSafetensorsFile(randomVectors(2, 1024, 2), 2, 1024)],
  ['an SDXL safetensors (BF16)', () => sdxlSafetensorsFile(randomVectors(5, 768, 3), randomVectors(5, 1280, 4), 5, 'BF16')],
  ['a diffusers .bin', () => diffusersBinFile('<x>', randomVectors(1, 768, 5), 1, 768, { oneDimensional: true })],
];

describe('toCanonicalSafetensors', () => {
  it.each(sources)('round-trips %s through the safetensors reader to the same values', async (_, source) => {
    const inspected = await inspectEmbeddingFile(source());
    const canonical = toCanonicalSafetensors(inspected);
    const reread = await inspectEmbeddingFile(canonical);
    const expected: InspectedEmbedding = { ...inspected, format: 'safetensors' };
    expect(reread).toEqual(expected);
  });

  it.each(sources)('writes the same bytes for %s every time', async (_, source) => {
    const first = toCanonicalSafetensors(await inspectEmbeddingFile(source()), { source_sha256: 'ab'.repeat(32) });
    const second = toCanonicalSafetensors(await inspectEmbeddingFile(source()), { source_sha256: 'ab'.repeat(32) });
    expect(Buffer.from(second).equals(Buffer.from(first))).toBe(true);
  });

  it('lays the file out as documented: metadata, sorted F32 tensors, header padded to 8', async () => {
    const clipL = randomVectors(2, 768, 6);
    const clipG = randomVectors(2, 1280, 7);
    const canonical = toCanonicalSafetensors(await inspectEmbeddingFile(sdxlSafetensorsFile(clipL, clipG, 2)), { source_sha256: 'cd'.repeat(32), air: 'civitai:1@2' });
    const { length, json } = header(canonical);
    expect(length % 8).toBe(0);
    expect(Object.keys(json)).toEqual(['__metadata__', 'clip_g', 'clip_l']);
    expect(json.__metadata__).toEqual({ format: 'clipgate-embedding', version: '1', family: 'sdxl', vectors: '2', air: 'civitai:1@2', source_sha256: 'cd'.repeat(32) });
    expect(Object.keys(json.__metadata__ as object)).toEqual(['format', 'version', 'family', 'vectors', 'air', 'source_sha256']);
    expect(json.clip_g).toEqual({ dtype: 'F32', shape: [2, 1280], data_offsets: [0, 10240] });
    expect(json.clip_l).toEqual({ dtype: 'F32', shape: [2, 768], data_offsets: [10240, 16384] });
    expect(canonical.length).toBe(8 + length + 16384);
    const file = readSafetensors(canonical);
    expect(file.metadata.get('family')).toBe('sdxl');
    expect(new Float32Array(file.tensors.get('clip_l')?.data.slice().buffer ?? new ArrayBuffer(0))).toEqual(clipL);
  });

  it('changes when a value changes', async () => {
    const values = randomVectors(1, 768, 8);
    const before = toCanonicalSafetensors(await inspectEmbeddingFile(kohyaSafetensorsFile(values, 1, 768)));
    values[100] = (values[100] ?? 0) + 0.5;
    const after = toCanonicalSafetensors(await inspectEmbeddingFile(kohyaSafetensorsFile(values, 1, 768)));
    expect(Buffer.from(after).equals(Buffer.from(before))).toBe(false);
  });

  it('refuses metadata that would overwrite what the file says of itself', async () => {
    const inspected = await inspectEmbeddingFile(kohyaSafetensorsFile(randomVectors(1, 768, 9), 1, 768));
    expect(() => toCanonicalSafetensors(inspected, { family: 'sdxl' })).toThrow(/may not set family/);
  });
});
