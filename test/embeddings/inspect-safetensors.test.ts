import { describe, expect, it } from 'vitest';
import { EmbeddingFileError, inspectEmbeddingFile, type InspectedEmbedding } from '../../src/embeddings/inspect-embedding.js';
import {
  countOutsideTolerance,
  kohyaSafetensorsFile,
  lyingSafetensorsHeader,
  randomVectors,
  safetensorsFile,
  safetensorsFromParts,
  sdxlSafetensorsFile,
  truncatedSafetensors,
  type FixtureDtype,
  type HeaderLie,
} from '../support/embedding-fixtures.js';

async function refusal(bytes: Uint8Array): Promise<EmbeddingFileError> {
  const error: unknown = await inspectEmbeddingFile(bytes).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  if (!(error instanceof EmbeddingFileError)) throw new Error(`expected an EmbeddingFileError, got ${String(error)}`);
  return error;
}

function only(embedding: InspectedEmbedding, slot: 'clip_l' | 'clip_g' | 'clip_h'): Float32Array {
  const tensor = embedding.tensors[slot];
  if (tensor === undefined) throw new Error(`no ${slot}`);
  return tensor.values;
}

describe('inspectEmbeddingFile on safetensors', () => {
  it('reads a kohya SD 1.5 embedding (emb_params [n, 768]) exactly', async () => {
    const values = randomVectors(8, 768, 1);
    const embedding = await inspectEmbeddingFile(kohyaSafetensorsFile(values, 8, 768));
    expect(embedding).toMatchObject({ format: 'safetensors', family: 'sd1', vectors: 8 });
    expect(Object.keys(embedding.tensors)).toEqual(['clip_l']);
    expect(embedding.tensors.clip_l?.shape).toEqual([8, 768]);
    expect(only(embedding, 'clip_l')).toEqual(values);
  });

  it('reads an SD 2.x embedding ([n, 1024]) into clip_h', async () => {
    const values = randomVectors(3, 1024, 2);
    const embedding = await inspectEmbeddingFile(kohyaSafetensorsFile(values, 3, 1024));
    expect(embedding).toMatchObject({ format: 'safetensors', family: 'sd2', vectors: 3 });
    expect(Object.keys(embedding.tensors)).toEqual(['clip_h']);
    expect(only(embedding, 'clip_h')).toEqual(values);
  });

  it('accepts any single tensor name and a 1-D tensor as one vector', async () => {
    const values = randomVectors(1, 768, 3);
    const embedding = await inspectEmbeddingFile(safetensorsFile({ 'string_to_param.*': { shape: [768], values } }));
    expect(embedding).toMatchObject({ family: 'sd1', vectors: 1 });
    expect(embedding.tensors.clip_l?.shape).toEqual([1, 768]);
    expect(only(embedding, 'clip_l')).toEqual(values);
  });

  it('reads an SDXL pair clip_l [n, 768] + clip_g [n, 1280]', async () => {
    const clipL = randomVectors(4, 768, 4);
    const clipG = randomVectors(4, 1280, 5);
    const embedding = await inspectEmbeddingFile(sdxlSafetensorsFile(clipL, clipG, 4));
    expect(embedding).toMatchObject({ format: 'safetensors', family: 'sdxl', vectors: 4 });
    expect(embedding.tensors.clip_l?.shape).toEqual([4, 768]);
    expect(embedding.tensors.clip_g?.shape).toEqual([4, 1280]);
    expect(only(embedding, 'clip_l')).toEqual(clipL);
    expect(only(embedding, 'clip_g')).toEqual(clipG);
  });

  it.each<FixtureDtype>(['F16', 'BF16'])('converts %s to float32 within its precision', async (dtype) => {
    const clipL = randomVectors(2, 768, 6);
    const clipG = randomVectors(2, 1280, 7);
    const embedding = await inspectEmbeddingFile(sdxlSafetensorsFile(clipL, clipG, 2, dtype));
    expect(countOutsideTolerance(only(embedding, 'clip_l'), clipL, dtype)).toBe(0);
    expect(countOutsideTolerance(only(embedding, 'clip_g'), clipG, dtype)).toBe(0);
    // And not exact, or the test would not be testing a conversion.
    expect(only(embedding, 'clip_l')).not.toEqual(clipL);
  });

  it('accepts F64 and converts it', async () => {
    const values = randomVectors(2, 768, 8);
    const embedding = await inspectEmbeddingFile(kohyaSafetensorsFile(values, 2, 768, 'F64'));
    expect(only(embedding, 'clip_l')).toEqual(values);
  });

  it('reads the largest supported embedding: 75 vectors', async () => {
    const embedding = await inspectEmbeddingFile(kohyaSafetensorsFile(randomVectors(75, 768, 9), 75, 768));
    expect(embedding.vectors).toBe(75);
  });

  describe('refuses shapes that are not a served textual inversion', () => {
    it.each<[string, Uint8Array, RegExp]>([
      ['no vectors (n = 0)', safetensorsFile({ emb_params: { shape: [0, 768], values: [] } }), /holds 0 vectors; expected 1 to 75/],
      ['76 vectors', kohyaSafetensorsFile(randomVectors(76, 768, 10), 76, 768), /holds 76 vectors; expected 1 to 75/],
      ['width 512', kohyaSafetensorsFile(randomVectors(2, 512, 11), 2, 512), /width 512; expected 768 \(SD 1.x\) or 1024 \(SD 2.x\)/],
      ['a lone clip_g', safetensorsFile({ clip_g: { shape: [1, 1280], values: randomVectors(1, 1280, 12) } }), /width 1280;.*SDXL pair/],
      [
        'clip_l and clip_g with different counts',
        safetensorsFile({ clip_l: { shape: [2, 768], values: randomVectors(2, 768, 13) }, clip_g: { shape: [3, 1280], values: randomVectors(3, 1280, 14) } }),
        /same number of vectors; found 2 and 3/,
      ],
      [
        'clip_l of the wrong width',
        safetensorsFile({ clip_l: { shape: [2, 1024], values: randomVectors(2, 1024, 15) }, clip_g: { shape: [2, 1280], values: randomVectors(2, 1280, 16) } }),
        /clip_l has width 1024; expected 768/,
      ],
      [
        'two tensors that are not clip_l and clip_g',
        safetensorsFile({ a: { shape: [1, 768], values: randomVectors(1, 768, 17) }, b: { shape: [1, 768], values: randomVectors(1, 768, 18) } }),
        /found 2 tensors \("a", "b"\)/,
      ],
      ['no tensor at all', safetensorsFile({}, { note: 'empty' }), /found 0 tensors/],
      ['a 3-D tensor', safetensorsFile({ emb_params: { shape: [1, 2, 768], values: randomVectors(2, 768, 19) } }), /shape \[1, 2, 768\]; expected \[vectors, width\] or \[width\]/],
      [
        'an integer dtype',
        safetensorsFromParts({ emb_params: { dtype: 'I64', shape: [1, 768], data_offsets: [0, 6144] } }, new Uint8Array(6144)),
        /dtype "I64"; expected F32, F16, BF16 or F64/,
      ],
    ])('%s', async (_, bytes, message) => {
      const error = await refusal(bytes);
      expect(error.problem).toBe('unsupportedShape');
      expect(error.message).toMatch(message);
    });
  });

  it.each([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
  ])('refuses a tensor holding %s', async (_, bad) => {
    const values = randomVectors(2, 768, 20);
    values[777] = bad;
    const error = await refusal(kohyaSafetensorsFile(values, 2, 768));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/non-finite value .* at element 777/);
  });

  it('refuses finite float32 values that float16 cannot hold, naming the value and the limit', async () => {
    const values = randomVectors(2, 768, 22);
    values[300] = -7e4;
    const error = await refusal(kohyaSafetensorsFile(values, 2, 768));
    expect(error.problem).toBe('valueOutOfRange');
    expect(error.message).toMatch(/-70000 at element 300, beyond ±65504, the largest float16/);
    // The largest float16 itself fits.
    values[300] = 65504;
    await expect(inspectEmbeddingFile(kohyaSafetensorsFile(values, 2, 768))).resolves.toMatchObject({ vectors: 2 });
  });

  it('refuses an F16 infinity', async () => {
    const values = randomVectors(1, 768, 21);
    values[5] = 1e6; // beyond half precision's 65504: stored as +Inf
    expect((await refusal(kohyaSafetensorsFile(values, 1, 768, 'F16'))).problem).toBe('unparseable');
  });

  describe('hostile or broken files', () => {
    it('refuses a truncated file', async () => {
      const error = await refusal(truncatedSafetensors());
      expect(error.problem).toBe('unparseable');
      expect(error.message).toMatch(/claims bytes 0\.\.6144, but the data region holds 5144 bytes/);
    });

    it.each<[HeaderLie, RegExp]>([
      ['shape', /shape \[3, 768\] of F32, which needs 9216 bytes, but its offsets span 6144/],
      ['offsets', /claims bytes 4096\.\.10240, but the data region holds 6144 bytes/],
      ['headerLength', /header claims 1099511627776 bytes, but only \d+ bytes follow/],
      ['overlap', /"a" and "b" claim overlapping bytes/],
      ['dtype', /F16, which needs 3072 bytes, but its offsets span 6144/],
    ])('refuses a header that lies about its %s', async (lie, message) => {
      const error = await refusal(lyingSafetensorsHeader(lie));
      expect(error.problem).toBe('unparseable');
      expect(error.message).toMatch(message);
    });

    it('refuses a header over the 1 MiB cap as too large', async () => {
      const bytes = safetensorsFile({ emb_params: { shape: [1, 768], values: randomVectors(1, 768, 22) } }, { padding: 'x'.repeat(1024 * 1024) });
      const error = await refusal(bytes);
      expect(error.problem).toBe('tooLarge');
      expect(error.message).toMatch(/at most 1048576 are accepted/);
    });

    it.each<[string, Uint8Array, RegExp]>([
      ['a header that is not JSON', safetensorsFromParts('ignored', new Uint8Array(0)).fill(0x7b, 8, 16), /not valid JSON/],
      ['a JSON array header', safetensorsFromParts([1, 2], new Uint8Array(0)), /not a JSON object|neither safetensors/],
      ['a negative offset', safetensorsFromParts({ t: { dtype: 'F32', shape: [1, 768], data_offsets: [-4, 3068] } }, new Uint8Array(3072)), /no valid data_offsets/],
      ['a fractional shape', safetensorsFromParts({ t: { dtype: 'F32', shape: [1.5, 768], data_offsets: [0, 4608] } }, new Uint8Array(4608)), /no valid shape/],
      ['an unknown dtype', safetensorsFromParts({ t: { dtype: 'F12', shape: [1, 768], data_offsets: [0, 3072] } }, new Uint8Array(3072)), /dtype "F12", which safetensors does not define/],
      ['non-string metadata', safetensorsFromParts({ __metadata__: { step: 5 } }, new Uint8Array(0)), /__metadata__ value of "step" is not a string/],
      [
        'a shape whose size overflows',
        safetensorsFromParts({ t: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 0] } }, new Uint8Array(0)),
        /needs 4835703278458516698824704 bytes/,
      ],
    ])('refuses %s', async (_, bytes, message) => {
      const error = await refusal(bytes);
      expect(error.problem).toBe('unparseable');
      expect(error.message).toMatch(message);
    });
  });
});
