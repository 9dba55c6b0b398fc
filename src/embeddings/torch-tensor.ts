import { EmbeddingFileError } from './embedding-file-error.js';
import { floatDtypeBytes, toFloat32 } from './float-conversion.js';
import type { TorchTensorRef } from './pickle-values.js';

/**
 * Reads a torch tensor view out of its storage bytes as row-major float32. torch.save keeps views as views
 * (a slice of a bigger storage, a storage offset, any strides), so element (i, j, …) lives at
 * offset + Σ index·stride of the storage; every stride torch can produce is non-negative, and the furthest
 * element is checked against the storage before anything is read, so no view can reach outside it.
 */
export function readTorchTensor(tensor: TorchTensorRef, storageBytes: Uint8Array, label: string): Float32Array {
  const { storage, offset, size, stride } = tensor;
  const elementBytes = floatDtypeBytes[storage.dtype];
  if (storageBytes.length !== storage.numel * elementBytes) {
    throw new EmbeddingFileError(
      'unparseable',
      `${label}: its storage should hold ${storage.numel} ${storage.dtype} elements (${storage.numel * elementBytes} bytes), but the archive entry has ${storageBytes.length} bytes`,
    );
  }
  const count = size.reduce((product, dimension) => product * dimension, 1);
  if (count === 0) return new Float32Array(0);
  const furthest = size.reduce((sum, dimension, axis) => sum + (dimension - 1) * (stride[axis] ?? 0), offset);
  if (furthest >= storage.numel) {
    throw new EmbeddingFileError(
      'unparseable',
      `${label}: its view (offset ${offset}, size [${size.join(', ')}], stride [${stride.join(', ')}]) reaches element ${furthest} of a storage of ${storage.numel}`,
    );
  }
  return toFloat32(storageBytes, storage.dtype, count, (k) => storageIndex(k, offset, size, stride));
}

/** Row-major element k → storage index, peeling the last axis first. */
function storageIndex(k: number, offset: number, size: readonly number[], stride: readonly number[]): number {
  let index = offset;
  let rest = k;
  for (let axis = size.length - 1; axis >= 0; axis -= 1) {
    const dimension = size[axis] ?? 1;
    index += (rest % dimension) * (stride[axis] ?? 0);
    rest = Math.floor(rest / dimension);
  }
  return index;
}
