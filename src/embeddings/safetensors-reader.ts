import { EmbeddingFileError } from './embedding-file-error.js';
import { quoteUntrusted } from './quote-untrusted.js';

/**
 * Reads a safetensors file — an 8-byte little-endian header length, a JSON header, then raw tensor bytes —
 * trusting nothing in the header: its length is checked against the file and a cap, and every tensor's
 * offsets against its dtype, its shape and the data region, before a byte of data is looked at. Nothing is
 * converted here; a tensor is handed out as a view of its bytes.
 */

export interface SafetensorsTensor {
  /** The file's dtype label (F32, F16, BF16, I64, …); whether it is usable is the caller's question. */
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Exactly product(shape) × dtype size bytes, a view into the file. */
  readonly data: Uint8Array;
}

export interface SafetensorsFile {
  readonly metadata: ReadonlyMap<string, string>;
  /** In header order. */
  readonly tensors: ReadonlyMap<string, SafetensorsTensor>;
}

/** A real embedding header is a few hundred bytes; a megabyte leaves room for generous metadata. */
export const SAFETENSORS_MAX_HEADER_BYTES = 1024 * 1024;

const MAX_RANK = 8;

/** Element sizes of every dtype the safetensors format defines; any other label is a malformed header. */
const dtypeBytes: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** The cheap content sniff: a header length that fits the file, followed by the header's opening brace. */
export function looksLikeSafetensors(bytes: Uint8Array): boolean {
  return bytes.length >= 10 && bytes[8] === 0x7b;
}

export function readSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (bytes.length < 8) {
    throw unparseable(`a safetensors file starts with an 8-byte header length, but the file has only ${bytes.length} bytes`);
  }
  const declared = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  const available = bytes.length - 8;
  if (declared > BigInt(available)) {
    throw unparseable(`the safetensors header claims ${declared} bytes, but only ${available} bytes follow its length`);
  }
  const headerLength = Number(declared);
  if (headerLength > SAFETENSORS_MAX_HEADER_BYTES) {
    throw new EmbeddingFileError(
      'tooLarge',
      `the safetensors header is ${headerLength} bytes; at most ${SAFETENSORS_MAX_HEADER_BYTES} are accepted`,
    );
  }
  const header = parseHeader(bytes.subarray(8, 8 + headerLength));
  const data = bytes.subarray(8 + headerLength);

  const metadata = new Map<string, string>();
  const tensors = new Map<string, SafetensorsTensor>();
  const spans: { begin: number; end: number; name: string }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      readMetadata(entry, metadata);
      continue;
    }
    const tensor = readTensorEntry(name, entry, data);
    tensors.set(name, tensor);
    spans.push({ begin: tensor.data.byteOffset - data.byteOffset, end: tensor.data.byteOffset - data.byteOffset + tensor.data.byteLength, name });
  }
  checkNoOverlap(spans);
  return { metadata, tensors };
}

/** The JSON header of a safetensors file, as an object, checked to be one (nothing else is checked). */
export function parseSafetensorsHeader(headerBytes: Uint8Array): Record<string, unknown> {
  return parseHeader(headerBytes);
}

function parseHeader(headerBytes: Uint8Array): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw unparseable('the safetensors header is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw unparseable('the safetensors header is not valid JSON');
  }
  if (!isRecord(parsed)) throw unparseable('the safetensors header is not a JSON object');
  return parsed;
}

function readMetadata(entry: unknown, into: Map<string, string>): void {
  if (!isRecord(entry)) throw unparseable('the safetensors __metadata__ is not an object of strings');
  for (const [key, value] of Object.entries(entry)) {
    if (typeof value !== 'string') throw unparseable(`the safetensors __metadata__ value of ${quoteUntrusted(key)} is not a string`);
    into.set(key, value);
  }
}

function readTensorEntry(name: string, entry: unknown, data: Uint8Array): SafetensorsTensor {
  const label = `tensor ${quoteUntrusted(name)}`;
  if (!isRecord(entry)) throw unparseable(`the safetensors header entry of ${label} is not an object`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string') throw unparseable(`${label} has no dtype`);
  const elementBytes = dtypeBytes[dtype];
  if (elementBytes === undefined) throw unparseable(`${label} has dtype ${quoteUntrusted(dtype, 16)}, which safetensors does not define`);
  if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every(isCount)) {
    throw unparseable(`${label} has no valid shape (a list of at most ${MAX_RANK} non-negative integers)`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw unparseable(`${label} has no valid data_offsets (two non-negative integers)`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end || end > data.length) {
    throw unparseable(`${label} claims bytes ${begin}..${end}, but the data region holds ${data.length} bytes`);
  }
  // Multiplying in BigInt keeps a hostile shape such as [2^40, 2^40] from rounding into a plausible size.
  const expected = (shape as number[]).reduce((product, dimension) => product * BigInt(dimension), BigInt(elementBytes));
  if (expected !== BigInt(end - begin)) {
    throw unparseable(`${label} has shape [${shape.join(', ')}] of ${dtype}, which needs ${expected} bytes, but its offsets span ${end - begin}`);
  }
  return { dtype, shape: shape as number[], data: data.subarray(begin, end) };
}

function checkNoOverlap(spans: { begin: number; end: number; name: string }[]): void {
  const sorted = spans.filter((span) => span.end > span.begin).sort((a, b) => a.begin - b.begin);
  for (let index = 1; index < sorted.length; index += 1) {
    const previous = sorted[index - 1];
    const current = sorted[index];
    if (previous !== undefined && current !== undefined && current.begin < previous.end) {
      throw unparseable(`tensors ${quoteUntrusted(previous.name)} and ${quoteUntrusted(current.name)} claim overlapping bytes`);
    }
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function unparseable(message: string): EmbeddingFileError {
  return new EmbeddingFileError('unparseable', message);
}
