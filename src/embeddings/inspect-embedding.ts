import type { EmbeddingFileFormat } from '../contracts/model-record.js';
import { classifyEmbedding, type EmbeddingFileFamily, type EmbeddingSlot, type FoundTensor } from './embedding-layout.js';
import { EmbeddingFileError } from './embedding-file-error.js';
import { FLOAT16_MAX, floatDtypeBytes, isFloatDtype, toFloat32 } from './float-conversion.js';
import { unpickle } from './restricted-unpickler.js';
import { looksLikeSafetensors, readSafetensors } from './safetensors-reader.js';
import { quoteUntrusted } from './quote-untrusted.js';
import { findTorchEmbedding } from './torch-embedding.js';
import { readTorchTensor } from './torch-tensor.js';
import { openTorchArchive } from './torch-zip-reader.js';

/**
 * The one entry point for an embedding file fresh from a registry: detect its format from its bytes (a
 * file name proves nothing), read tensor names and shapes without executing anything, decide the family and
 * vector count, and only then read the values, as float32. Throws EmbeddingFileError.
 */

export type { EmbeddingFileFamily } from './embedding-layout.js';
export { EmbeddingFileError, type EmbeddingFileProblem } from './embedding-file-error.js';

export interface EmbeddingTensor {
  /** [vectors, width]; a 1-D tensor in the file is one vector. */
  readonly shape: readonly [number, number];
  /** Row-major, converted to float32. */
  readonly values: Float32Array;
}

export interface InspectedEmbedding {
  readonly format: EmbeddingFileFormat;
  readonly family: EmbeddingFileFamily;
  readonly vectors: number;
  /** sd1 → clip_l; sd2 → clip_h; sdxl → clip_l + clip_g */
  readonly tensors: Readonly<Partial<Record<EmbeddingSlot, EmbeddingTensor>>>;
}

export interface InspectOptions {
  /** Cap on bytes inflated from a torch zip archive, per entry and in total; 64 MiB by default. */
  readonly maxUncompressedBytes?: number;
}

export const DEFAULT_MAX_UNCOMPRESSED_BYTES = 64 * 1024 * 1024;

const ZIP_LOCAL_HEADER = [0x50, 0x4b, 0x03, 0x04];
/** torch's pre-1.6 format opens with a pickled magic number: PROTO 2, LONG1 of 10 bytes. */
const LEGACY_TORCH_PREFIX = [0x80, 0x02, 0x8a, 0x0a];

export async function inspectEmbeddingFile(bytes: Uint8Array, options: InspectOptions = {}): Promise<InspectedEmbedding> {
  const maxUncompressedBytes = options.maxUncompressedBytes ?? DEFAULT_MAX_UNCOMPRESSED_BYTES;
  if (!Number.isSafeInteger(maxUncompressedBytes) || maxUncompressedBytes <= 0) {
    throw new RangeError(`maxUncompressedBytes must be a positive integer, got ${maxUncompressedBytes}`);
  }
  if (startsWith(bytes, ZIP_LOCAL_HEADER)) return inspectTorchArchive(bytes, maxUncompressedBytes);
  if (startsWith(bytes, LEGACY_TORCH_PREFIX)) {
    throw new EmbeddingFileError(
      'unparseable',
      'this is a torch file in the legacy (pre-1.6) format, which is a bare pickle stream; re-save it with a current torch or convert it to safetensors',
    );
  }
  if (looksLikeSafetensors(bytes)) return inspectSafetensors(bytes);
  throw new EmbeddingFileError(
    'unparseable',
    `the file (${bytes.length} bytes) is neither safetensors nor a torch zip archive (.pt / .bin saved by torch 1.6 or newer)`,
  );
}

function inspectSafetensors(bytes: Uint8Array): Promise<InspectedEmbedding> {
  const file = readSafetensors(bytes);
  const found: FoundTensor[] = [...file.tensors].map(([name, tensor]) => ({
    name,
    dtype: tensor.dtype,
    shape: tensor.shape,
    read: async () => {
      const { dtype, data } = tensor;
      // classifyEmbedding refuses other dtypes before any tensor is read.
      if (!isFloatDtype(dtype)) throw new Error(`dtype ${dtype} reached the float conversion`);
      return toFloat32(data, dtype, data.length / floatDtypeBytes[dtype]);
    },
  }));
  return classifyAndRead('safetensors', found);
}

async function inspectTorchArchive(bytes: Uint8Array, maxUncompressedBytes: number): Promise<InspectedEmbedding> {
  const archive = await openTorchArchive(bytes, maxUncompressedBytes);
  try {
    const layout = findTorchEmbedding(unpickle(archive.pickle));
    const found: FoundTensor[] = layout.tensors.map(({ name, tensor }) => ({
      name,
      dtype: tensor.storage.dtype,
      shape: tensor.size,
      read: async () => readTorchTensor(tensor, await archive.readStorage(tensor.storage.key), `tensor ${quoteUntrusted(name, 40)}`),
    }));
    return await classifyAndRead(layout.format, found);
  } finally {
    archive.close();
  }
}

async function classifyAndRead(format: EmbeddingFileFormat, found: readonly FoundTensor[]): Promise<InspectedEmbedding> {
  const layout = classifyEmbedding(found);
  const tensors: Partial<Record<EmbeddingSlot, EmbeddingTensor>> = {};
  for (const { slot, width, tensor } of layout.slots) {
    const values = await tensor.read();
    const bad = values.findIndex((value) => !Number.isFinite(value));
    if (bad >= 0) {
      throw new EmbeddingFileError('unparseable', `tensor ${slot} holds a non-finite value (${values[bad]}) at element ${bad}; an embedding is finite numbers`);
    }
    refuseBeyondFloat16(slot, values);
    tensors[slot] = { shape: [layout.vectors, width], values };
  }
  return { format, family: layout.family, vectors: layout.vectors, tensors };
}

/**
 * Workers run CLIP in float16, where a value past 65504 becomes infinite and A1111's mean restore turns the
 * whole conditioning into NaN, at any weight. Such a file passes a float32 check and must not pass this one.
 */
function refuseBeyondFloat16(slot: string, values: ArrayLike<number>): void {
  let largest = 0;
  let at = -1;
  for (let index = 0; index < values.length; index++) {
    const magnitude = Math.abs(values[index] ?? 0);
    if (magnitude > largest) {
      largest = magnitude;
      at = index;
    }
  }
  if (largest > FLOAT16_MAX) {
    throw new EmbeddingFileError(
      'valueOutOfRange',
      `tensor ${slot} holds ${values[at]} at element ${at}, beyond ±${FLOAT16_MAX}, the largest float16; GPU workers run the text encoder in float16, where it would become infinite and the prompt NaN`,
    );
  }
}

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return prefix.every((byte, index) => bytes[index] === byte);
}
