import { EmbeddingFileError } from './embedding-file-error.js';
import { isFloatDtype } from './float-conversion.js';
import { quoteUntrusted } from './quote-untrusted.js';

/**
 * Decides from tensor names, shapes and dtypes alone — before any value is read — whether a file is a
 * textual inversion clipgate serves, for which family, and with how many vectors:
 * - one tensor [n, 768] or [768] → sd1 (CLIP ViT-L), stored as clip_l;
 * - one tensor [n, 1024] or [1024] → sd2 (OpenCLIP ViT-H), stored as clip_h;
 * - clip_l [n, 768] + clip_g [n, 1280] → sdxl.
 * A 1-D tensor is one vector. 1 ≤ n ≤ 75: a prompt has 75 usable token slots, so a longer embedding could
 * never fit in one.
 */

export type EmbeddingFileFamily = 'sd1' | 'sd2' | 'sdxl';
export type EmbeddingSlot = 'clip_l' | 'clip_g' | 'clip_h';

/** A tensor as a file describes it, with a way to read its values once the layout is accepted. */
export interface FoundTensor {
  readonly name: string;
  /** The file's dtype label: F32, F16, BF16, F64 — or another the layout refuses. */
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Row-major float32 values; called only after the shape was accepted, so its size is bounded. */
  readonly read: () => Promise<Float32Array>;
}

export interface EmbeddingLayout {
  readonly family: EmbeddingFileFamily;
  readonly vectors: number;
  readonly slots: readonly { readonly slot: EmbeddingSlot; readonly width: number; readonly tensor: FoundTensor }[];
}

export const MAX_EMBEDDING_VECTORS = 75;

const CLIP_L_WIDTH = 768;
const CLIP_H_WIDTH = 1024;
const CLIP_G_WIDTH = 1280;

export function classifyEmbedding(tensors: readonly FoundTensor[]): EmbeddingLayout {
  if (tensors.length === 1 && tensors[0] !== undefined) return classifySingle(tensors[0]);
  const clipL = tensors.find((tensor) => tensor.name === 'clip_l');
  const clipG = tensors.find((tensor) => tensor.name === 'clip_g');
  if (tensors.length === 2 && clipL !== undefined && clipG !== undefined) return classifyPair(clipL, clipG);
  const names = tensors.slice(0, 4).map((tensor) => quoteUntrusted(tensor.name, 40));
  throw unsupported(
    `expected one tensor (SD 1.x or 2.x) or the pair clip_l + clip_g (SDXL); found ${tensors.length} tensors${
      names.length > 0 ? ` (${names.join(', ')}${tensors.length > names.length ? ', …' : ''})` : ''
    }`,
  );
}

function classifySingle(tensor: FoundTensor): EmbeddingLayout {
  const [vectors, width] = vectorsAndWidth(tensor);
  if (width !== CLIP_L_WIDTH && width !== CLIP_H_WIDTH) {
    throw unsupported(
      `tensor ${quoteUntrusted(tensor.name, 40)} has vectors of width ${width}; expected ${CLIP_L_WIDTH} (SD 1.x) or ${CLIP_H_WIDTH} (SD 2.x)${
        width === CLIP_G_WIDTH ? ', or an SDXL pair of clip_l (768) and clip_g (1280)' : ''
      }`,
    );
  }
  checkVectorCount(tensor, vectors);
  checkDtype(tensor);
  return width === CLIP_L_WIDTH
    ? { family: 'sd1', vectors, slots: [{ slot: 'clip_l', width, tensor }] }
    : { family: 'sd2', vectors, slots: [{ slot: 'clip_h', width, tensor }] };
}

function classifyPair(clipL: FoundTensor, clipG: FoundTensor): EmbeddingLayout {
  const [vectorsL, widthL] = vectorsAndWidth(clipL);
  const [vectorsG, widthG] = vectorsAndWidth(clipG);
  if (widthL !== CLIP_L_WIDTH) throw unsupported(`SDXL tensor clip_l has width ${widthL}; expected ${CLIP_L_WIDTH}`);
  if (widthG !== CLIP_G_WIDTH) throw unsupported(`SDXL tensor clip_g has width ${widthG}; expected ${CLIP_G_WIDTH}`);
  if (vectorsL !== vectorsG) {
    throw unsupported(`SDXL tensors clip_l and clip_g must hold the same number of vectors; found ${vectorsL} and ${vectorsG}`);
  }
  checkVectorCount(clipL, vectorsL);
  checkDtype(clipL);
  checkDtype(clipG);
  return {
    family: 'sdxl',
    vectors: vectorsL,
    slots: [
      { slot: 'clip_l', width: widthL, tensor: clipL },
      { slot: 'clip_g', width: widthG, tensor: clipG },
    ],
  };
}

function vectorsAndWidth(tensor: FoundTensor): [number, number] {
  const { shape } = tensor;
  if (shape.length === 1) return [1, shape[0] ?? 0];
  if (shape.length === 2) return [shape[0] ?? 0, shape[1] ?? 0];
  throw unsupported(`tensor ${quoteUntrusted(tensor.name, 40)} has shape [${shape.join(', ')}]; expected [vectors, width] or [width]`);
}

function checkVectorCount(tensor: FoundTensor, vectors: number): void {
  if (vectors < 1 || vectors > MAX_EMBEDDING_VECTORS) {
    throw unsupported(`tensor ${quoteUntrusted(tensor.name, 40)} holds ${vectors} vectors; expected 1 to ${MAX_EMBEDDING_VECTORS}`);
  }
}

function checkDtype(tensor: FoundTensor): void {
  if (!isFloatDtype(tensor.dtype)) {
    throw unsupported(`tensor ${quoteUntrusted(tensor.name, 40)} has dtype ${quoteUntrusted(tensor.dtype, 16)}; expected F32, F16, BF16 or F64`);
  }
}

function unsupported(message: string): EmbeddingFileError {
  return new EmbeddingFileError('unsupportedShape', message);
}
