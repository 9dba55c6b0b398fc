import type { Family } from '../contracts/families.js';
import type { LoraFileFacts } from '../contracts/model-record.js';
import type { RegistryFile } from '../contracts/registry-file.js';
import { DownloadError, downloadFile } from '../embeddings/download-file.js';
import { EmbeddingFileError } from '../embeddings/embedding-file-error.js';
import { parseSafetensorsHeader } from '../embeddings/safetensors-reader.js';
import type { ErrorCode } from '../errors.js';
import { classifyLora, type HeaderTensor } from './lora-layout.js';

/**
 * A LoRA's file as the registry lists it → the facts a worker needs (DESIGN §5), without downloading it: two
 * ranged reads (the 8-byte header length, then the header) give the tensor names and shapes, and those the
 * family. A server that ignores ranges sends the whole file; only the prefix is read and the connection
 * closed. Pickle LoRAs are refused: they would have to be unpickled on a GPU host. The worker downloads the
 * file itself and verifies it against the registry's SHA-256, which is therefore required.
 */

export class LoraRejected extends Error {
  override readonly name = 'LoraRejected';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export class LoraUnavailable extends Error {
  override readonly name = 'LoraUnavailable';
}

export interface LoraIngestDependencies {
  readonly timeoutMs: number;
  readonly credentials: { readonly origin: string; readonly token: string } | undefined;
  /** Headers beyond this are refused (kohya's training metadata makes some large; tensors never are). */
  readonly maxHeaderBytes?: number;
  readonly onHeaderRead?: (ranged: boolean) => void;
}

export interface InspectedLora {
  readonly family: Family;
  readonly facts: LoraFileFacts;
}

export const LORA_MAX_HEADER_BYTES = 16 * 1024 * 1024;
const PICKLE_NAME = /\.(?:pt|pth|ckpt|bin|pkl)$/i;

export async function inspectLora(file: RegistryFile, labelledFamily: Family, dependencies: LoraIngestDependencies): Promise<InspectedLora> {
  if (file.pickleScan === 'Danger' || file.virusScan === 'Danger') {
    throw new LoraRejected('loraFlaggedByScan', `the registry's scans mark its file "${file.name}" as dangerous (pickle scan: ${file.pickleScan}, virus scan: ${file.virusScan}).`);
  }
  if (file.format.toLowerCase() === 'pickletensor' || PICKLE_NAME.test(file.name)) {
    throw new LoraRejected(
      'loraFormatUnsupported',
      `its file "${file.name}" is a pickle (${file.format}): loading it would unpickle code on a GPU host. Use a version published as .safetensors.`,
    );
  }
  if (!file.sha256) {
    throw new LoraRejected('loraFileMissing', `the registry gives no SHA-256 for its file "${file.name}", so a worker could not verify the download.`);
  }
  const maxHeader = dependencies.maxHeaderBytes ?? LORA_MAX_HEADER_BYTES;
  const length = await readPrefix(file, 8, dependencies);
  if (length.length < 8) throw unreadable(file, `the file has only ${length.length} bytes`);
  const declared = new DataView(length.buffer, length.byteOffset, 8).getBigUint64(0, true);
  if (declared > BigInt(maxHeader)) throw unreadable(file, `its safetensors header claims ${declared} bytes; at most ${maxHeader} are read`);
  const headerLength = Number(declared);
  const prefix = await readPrefix(file, 8 + headerLength, dependencies);
  if (prefix.length < 8 + headerLength) throw unreadable(file, `its safetensors header claims ${headerLength} bytes, but the file ends first`);

  let tensors: HeaderTensor[];
  try {
    tensors = headerTensors(parseSafetensorsHeader(prefix.subarray(8, 8 + headerLength)));
  } catch (error) {
    if (error instanceof EmbeddingFileError) throw unreadable(file, error.message);
    throw error;
  }
  if (tensors.length === 0) throw unreadable(file, 'its safetensors header lists no tensors');
  const layout = classifyLora(tensors);
  // The file's own evidence wins over the registry's label; with none, the label is all there is.
  const family = layout.family ?? labelledFamily;
  return {
    family,
    facts: {
      sha256: file.sha256,
      sizeBytes: file.sizeBytes,
      format: 'safetensors',
      downloadUrl: file.downloadUrl,
      naming: layout.naming,
      evidence: layout.evidence,
      ...(layout.family !== undefined && layout.family !== labelledFamily && { labelledFamily }),
    },
  };
}

async function readPrefix(file: RegistryFile, bytes: number, dependencies: LoraIngestDependencies): Promise<Uint8Array> {
  try {
    const read = await downloadFile(file.downloadUrl, { maxBytes: bytes, prefixBytes: bytes, timeoutMs: dependencies.timeoutMs, credentials: dependencies.credentials });
    dependencies.onHeaderRead?.(read.ranged === true);
    return read.bytes;
  } catch (error) {
    if (!(error instanceof DownloadError)) throw error;
    if (error.problem === 'notFound') throw new LoraRejected('loraFileMissing', `its file "${file.name}" is listed by the registry but cannot be downloaded (not found).`);
    throw new LoraUnavailable(`its file "${file.name}" could not be read: ${error.message}`);
  }
}

function headerTensors(header: Record<string, unknown>): HeaderTensor[] {
  const tensors: HeaderTensor[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const shape = typeof entry === 'object' && entry !== null ? (entry as { shape?: unknown }).shape : undefined;
    if (!Array.isArray(shape) || !shape.every((dimension) => Number.isInteger(dimension) && dimension >= 0)) {
      throw new EmbeddingFileError('unparseable', `tensor ${JSON.stringify(name.slice(0, 80))} has no valid shape`);
    }
    tensors.push({ name, shape: shape as number[] });
  }
  return tensors;
}

function unreadable(file: RegistryFile, why: string): LoraRejected {
  return new LoraRejected('loraFileUnreadable', `its file "${file.name}" is not a readable safetensors LoRA: ${why}.`);
}
