import { describe, expect, it } from 'vitest';
import { inspectEmbeddingFile, type InspectedEmbedding } from '../../src/embeddings/inspect-embedding.js';
import {
  a1111PtFile,
  countOutsideTolerance,
  diffusersBinFile,
  randomVectors,
  torchDictFile,
  torchSaveFile,
  torchStorage,
  torchTensor,
  type FixtureDtype,
} from '../support/embedding-fixtures.js';
import { refusal } from '../support/inspection-refusal.js';
import { dict, persistent, pickleProtocol2, pyGlobal, reduce, tuple, type PyValue } from '../support/python-pickle-writer.js';


function values(embedding: InspectedEmbedding, slot: 'clip_l' | 'clip_g' | 'clip_h'): Float32Array {
  const tensor = embedding.tensors[slot];
  if (tensor === undefined) throw new Error(`no ${slot}`);
  return tensor.values;
}

describe('inspectEmbeddingFile on A1111 .pt files', () => {
  it('reads a trained SD 1.5 embedding exactly', async () => {
    const written = randomVectors(6, 768, 1);
    const embedding = await inspectEmbeddingFile(a1111PtFile(written, 6, 768));
    expect(embedding).toMatchObject({ format: 'a1111-pt', family: 'sd1', vectors: 6 });
    expect(embedding.tensors.clip_l?.shape).toEqual([6, 768]);
    expect(values(embedding, 'clip_l')).toEqual(written);
  });

  it('reads an SD 2.x embedding into clip_h', async () => {
    const written = randomVectors(75, 1024, 2);
    const embedding = await inspectEmbeddingFile(a1111PtFile(written, 75, 1024));
    expect(embedding).toMatchObject({ format: 'a1111-pt', family: 'sd2', vectors: 75 });
    expect(values(embedding, 'clip_h')).toEqual(written);
  });

  it('reads a vector saved as a torch.nn.Parameter (through _rebuild_parameter)', async () => {
    const written = randomVectors(3, 768, 3);
    const embedding = await inspectEmbeddingFile(a1111PtFile(written, 3, 768, { parameter: true }));
    expect(values(embedding, 'clip_l')).toEqual(written);
  });

  it('honours the storage offset of a view cut from a bigger storage', async () => {
    // The elements before the offset are NaN: reading them would be refused as non-finite.
    const written = randomVectors(2, 768, 4);
    const embedding = await inspectEmbeddingFile(a1111PtFile(written, 2, 768, { storageOffset: 5 * 768 + 3 }));
    expect(values(embedding, 'clip_l')).toEqual(written);
  });

  it.each<FixtureDtype>(['F16', 'BF16'])('converts a %s storage to float32 within its precision', async (dtype) => {
    const written = randomVectors(4, 768, 5);
    const embedding = await inspectEmbeddingFile(a1111PtFile(written, 4, 768, { dtype }));
    expect(countOutsideTolerance(values(embedding, 'clip_l'), written, dtype)).toBe(0);
  });

  it('converts a DoubleStorage', async () => {
    const written = randomVectors(1, 768, 6);
    expect(values(await inspectEmbeddingFile(a1111PtFile(written, 1, 768, { dtype: 'F64' })), 'clip_l')).toEqual(written);
  });

  it.each([
    ['torch before 1.13 (no byteorder record)', { byteorder: 'omit' as const }],
    ['torch 2.5+ (.format_version, .storage_alignment)', { formatVersionRecords: true }],
    ['an archive folder named after the file', { archiveName: 'EasyNegative' }],
    ['no checkpoint recorded', { checkpoint: null, checkpointName: null }],
  ])('reads the layout of %s', async (_, options) => {
    const written = randomVectors(2, 768, 7);
    expect(values(await inspectEmbeddingFile(a1111PtFile(written, 2, 768, options)), 'clip_l')).toEqual(written);
  });

  it('refuses a big-endian archive rather than misread it', async () => {
    const error = await refusal(a1111PtFile(randomVectors(1, 768, 8), 1, 768, { byteorder: 'big' }));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/byteorder is "big"; only little-endian/);
  });

  it.each<[string, number, number, RegExp]>([
    ['no vectors (n = 0)', 0, 768, /holds 0 vectors; expected 1 to 75/],
    ['76 vectors', 76, 768, /holds 76 vectors; expected 1 to 75/],
    ['width 512', 2, 512, /width 512; expected 768 \(SD 1.x\) or 1024 \(SD 2.x\)/],
  ])('refuses %s as an unsupported shape', async (_, n, width, message) => {
    const error = await refusal(a1111PtFile(randomVectors(n, width, 9), n, width));
    expect(error.problem).toBe('unsupportedShape');
    expect(error.message).toMatch(message);
  });
});

describe('inspectEmbeddingFile on diffusers .bin files', () => {
  it('reads {token: [n, 768]}', async () => {
    const written = randomVectors(2, 768, 10);
    const embedding = await inspectEmbeddingFile(diffusersBinFile('<cat-toy>', written, 2, 768));
    expect(embedding).toMatchObject({ format: 'diffusers-bin', family: 'sd1', vectors: 2 });
    expect(values(embedding, 'clip_l')).toEqual(written);
  });

  it('reads the older 1-D {token: [768]} as one vector', async () => {
    const written = randomVectors(1, 768, 11);
    const embedding = await inspectEmbeddingFile(diffusersBinFile('<cat-toy>', written, 1, 768, { oneDimensional: true }));
    expect(embedding).toMatchObject({ format: 'diffusers-bin', family: 'sd1', vectors: 1 });
    expect(embedding.tensors.clip_l?.shape).toEqual([1, 768]);
    expect(values(embedding, 'clip_l')).toEqual(written);
  });

  it('reads an SDXL pair saved with torch.save({clip_l, clip_g})', async () => {
    const clipL = randomVectors(2, 768, 12);
    const clipG = randomVectors(2, 1280, 13);
    const embedding = await inspectEmbeddingFile(torchDictFile({ clip_l: { values: clipL, shape: [2, 768] }, clip_g: { values: clipG, shape: [2, 1280] } }));
    expect(embedding).toMatchObject({ format: 'diffusers-bin', family: 'sdxl', vectors: 2 });
    expect(values(embedding, 'clip_l')).toEqual(clipL);
    expect(values(embedding, 'clip_g')).toEqual(clipG);
  });

  it('refuses an SDXL pair with different vector counts', async () => {
    const error = await refusal(
      torchDictFile({ clip_l: { values: randomVectors(1, 768, 14), shape: [1, 768] }, clip_g: { values: randomVectors(2, 1280, 15), shape: [2, 1280] } }),
    );
    expect(error.problem).toBe('unsupportedShape');
    expect(error.message).toMatch(/found 1 and 2/);
  });

  it('refuses a dict of many tensors (a model, not an embedding)', async () => {
    const tensors = Object.fromEntries(Array.from({ length: 5 }, (_, index) => [`layer.${index}.weight`, { values: randomVectors(1, 768, index), shape: [1, 768] }]));
    const error = await refusal(torchDictFile(tensors));
    expect(error.problem).toBe('unsupportedShape');
    expect(error.message).toMatch(/found 5 tensors \("layer.0.weight", .*, …\)/);
  });

  it('refuses a dict holding something besides tensors', async () => {
    const pickle = pickleProtocol2(dict([['state_dict', dict([])]]));
    const error = await refusal(torchSaveFile(pickle, []));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/holds a dict beside its tensors/);
  });
});

describe('torch tensor views', () => {
  it('gathers a non-contiguous (column-major) view element by element', async () => {
    const n = 3;
    const width = 768;
    const rowMajor = randomVectors(n, width, 16);
    // Store the transpose, then describe the [n, width] tensor with strides (1, n) over it.
    const columnMajor = new Float32Array(n * width);
    for (let row = 0; row < n; row += 1) for (let column = 0; column < width; column += 1) columnMajor[column * n + row] = rowMajor[row * width + column] ?? 0;
    const storage = torchStorage('0', columnMajor, 'F32', 0);
    const pickle = pickleProtocol2(dict([['<t>', torchTensor(storage, 0, [n, width], false, [1, n])]]));
    expect(values(await inspectEmbeddingFile(torchSaveFile(pickle, [storage])), 'clip_l')).toEqual(rowMajor);
  });

  it('refuses a view that reaches past the end of its storage', async () => {
    const storage = torchStorage('0', randomVectors(1, 768, 17), 'F32', 0);
    const pickle = pickleProtocol2(dict([['<t>', torchTensor(storage, 1, [1, 768], false)]]));
    const error = await refusal(torchSaveFile(pickle, [storage]));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/reaches element 768 of a storage of 768/);
  });

  it('refuses a storage entry whose size contradicts the persistent id', async () => {
    const storage = torchStorage('0', randomVectors(1, 768, 18), 'F32', 0);
    const pickle = pickleProtocol2(dict([['<t>', torchTensor(storage, 0, [1, 768], false)]]));
    const error = await refusal(torchSaveFile(pickle, [{ key: '0', bytes: storage.bytes.subarray(0, 3000) }]));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/should hold 768 F32 elements \(3072 bytes\), but the archive entry has 3000 bytes/);
  });

  it('refuses a pickle that names a storage the archive lacks', async () => {
    const storage = torchStorage('7', randomVectors(1, 768, 19), 'F32', 0);
    const pickle = pickleProtocol2(dict([['<t>', torchTensor(storage, 0, [1, 768], false)]]));
    const error = await refusal(torchSaveFile(pickle, []));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/refers to storage "7", but the archive has no "archive\/data\/7"/);
  });

  function rebuildWith(...extra: PyValue[]): Uint8Array {
    const storage = torchStorage('0', randomVectors(1, 768, 20), 'F32', 0);
    const pid = persistent(tuple('storage', pyGlobal('torch', 'FloatStorage'), '0', 'cpu', 768));
    const tensor = reduce(pyGlobal('torch._utils', '_rebuild_tensor_v2'), tuple(pid, 0, tuple(1, 768), tuple(768, 1), false, ...extra));
    return torchSaveFile(pickleProtocol2(dict([['<t>', tensor]])), [storage]);
  }

  it('accepts the optional metadata argument of _rebuild_tensor_v2', async () => {
    expect((await inspectEmbeddingFile(rebuildWith(reduce(pyGlobal('collections', 'OrderedDict'), tuple()), dict([])))).vectors).toBe(1);
  });

  it('refuses backward hooks rather than keep something that would be called', async () => {
    const error = await refusal(rebuildWith(dict([[1, 'hook']])));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/gets 1 backward hooks; expected an empty OrderedDict/);
  });

  it('refuses _rebuild_tensor_v2 called with the wrong number of arguments', async () => {
    const error = await refusal(rebuildWith(reduce(pyGlobal('collections', 'OrderedDict'), tuple()), null, 'extra'));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/called with 8 arguments; expected 6 or 7/);
  });
});
