import type { EmbeddingFileFormat } from '../contracts/model-record.js';
import { EmbeddingFileError } from './embedding-file-error.js';
import { describeKind, isKind, type PickleDict, type PickleValue, type TorchTensorRef } from './pickle-values.js';

/**
 * Finds the embedding tensors in an unpickled torch file. Two layouts are in the wild:
 * - A1111 `.pt`: {'string_to_token': {...}, 'string_to_param': {'*': tensor}, 'name': …, 'step': …, …};
 *   only string_to_param matters, the rest is training bookkeeping;
 * - diffusers `.bin` (and kohya-style `.pt` alike): {'<token>': tensor}, or {'clip_l': t, 'clip_g': t}
 *   for SDXL — a dict whose values are all tensors.
 */

export type TorchEmbeddingFormat = Exclude<EmbeddingFileFormat, 'safetensors'>;

export interface NamedTorchTensor {
  readonly name: string;
  readonly tensor: TorchTensorRef;
}

export interface TorchEmbeddingLayout {
  readonly format: TorchEmbeddingFormat;
  readonly tensors: readonly NamedTorchTensor[];
}

export function findTorchEmbedding(root: PickleValue): TorchEmbeddingLayout {
  if (!isKind(root, 'dict')) throw unparseable(`the pickle holds a ${describeKind(root)}; an embedding file holds a dict`);
  const params = root.entries.get('string_to_param');
  if (params !== undefined) {
    if (!isKind(params, 'dict')) throw unparseable(`string_to_param is a ${describeKind(params)}, not a dict of tensors`);
    return { format: 'a1111-pt', tensors: tensorsOf(params, 'string_to_param') };
  }
  return { format: 'diffusers-bin', tensors: tensorsOf(root, 'the top-level dict') };
}

function tensorsOf(dict: PickleDict, where: string): NamedTorchTensor[] {
  const tensors: NamedTorchTensor[] = [];
  for (const [key, value] of dict.entries) {
    if (!isKind(value, 'tensor')) {
      throw unparseable(
        `${where} holds a ${describeKind(value)} beside its tensors; expected an A1111 embedding (a dict with string_to_param) or a diffusers one ({token: tensor})`,
      );
    }
    if (typeof key !== 'string') throw unparseable(`${where} keys a tensor by a ${describeKind(key)} instead of a token string`);
    tensors.push({ name: key, tensor: value });
  }
  return tensors;
}

function unparseable(message: string): EmbeddingFileError {
  return new EmbeddingFileError('unparseable', message);
}
