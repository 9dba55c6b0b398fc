import type { EmbeddingTensor, InspectedEmbedding } from './inspect-embedding.js';

/**
 * Writes the canonical copy of an embedding — the only form a worker ever receives: safetensors, float32,
 * tensors named by text encoder (clip_l, clip_g, clip_h) and sorted by name, the header padded with spaces
 * to a multiple of 8 so the data starts aligned. Header keys are written in a fixed order, so the same
 * embedding always gives the same bytes, and so the same SHA-256 to address it by.
 */

export const CANONICAL_FORMAT = 'clipgate-embedding';
export const CANONICAL_VERSION = '1';

const reservedMetadataKeys: ReadonlySet<string> = new Set(['format', 'version', 'family', 'vectors']);

export function toCanonicalSafetensors(embedding: InspectedEmbedding, metadata: Record<string, string> = {}): Uint8Array {
  const reserved = Object.keys(metadata).filter((key) => reservedMetadataKeys.has(key));
  if (reserved.length > 0) {
    // These describe the canonical file itself; letting a caller override them would let the file lie.
    throw new RangeError(`canonical safetensors metadata may not set ${reserved.join(', ')}`);
  }
  const tensors = Object.entries(embedding.tensors)
    .filter((entry): entry is [string, EmbeddingTensor] => entry[1] !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  const header: Record<string, unknown> = {
    __metadata__: {
      format: CANONICAL_FORMAT,
      version: CANONICAL_VERSION,
      family: embedding.family,
      vectors: String(embedding.vectors),
      ...Object.fromEntries(Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    },
  };
  let offset = 0;
  for (const [name, tensor] of tensors) {
    const [vectors, width] = tensor.shape;
    if (tensor.values.length !== vectors * width) {
      throw new RangeError(`tensor ${name} has ${tensor.values.length} values for shape [${vectors}, ${width}]`);
    }
    const end = offset + tensor.values.length * 4;
    header[name] = { dtype: 'F32', shape: [vectors, width], data_offsets: [offset, end] };
    offset = end;
  }

  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.length / 8) * 8;
  const file = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(file.buffer);
  view.setBigUint64(0, BigInt(headerLength), true);
  file.set(json, 8);
  file.fill(0x20, 8 + json.length, 8 + headerLength);

  let at = 8 + headerLength;
  for (const [, tensor] of tensors) {
    for (const value of tensor.values) {
      view.setFloat32(at, value, true);
      at += 4;
    }
  }
  return file;
}
