import { seededRandom } from './seeded-random.js';
import { crc32, constants, deflateRawSync } from 'node:zlib';
import { dict, list, persistent, pickleProtocol2, PyStr, pyGlobal, reduce, tuple, type PyReduce, type PyValue } from './python-pickle-writer.js';
import { torchZip, type ZipRecord } from './torch-zip-writer.js';

/**
 * Embedding files in every format clipgate meets, written by the tests themselves in the exact byte layout
 * of their real writers (the safetensors library, torch.save), plus the hostile files an attacker would
 * upload instead. Nothing is downloaded.
 */

export type FixtureDtype = 'F32' | 'F16' | 'BF16' | 'F64';

/** Deterministic values shaped like real embedding rows (roughly normal, σ ≈ 0.01), exact in float32. */
export function randomVectors(n: number, width: number, seed: number): Float32Array {
  const next = seededRandom(seed);
  const values = new Float32Array(n * width);
  for (let index = 0; index < values.length; index += 1) values[index] = (next() + next() + next() + next() - 2) * 0.02;
  return values;
}

export function randomBytes(length: number, seed: number): Uint8Array {
  const next = seededRandom(seed);
  return Uint8Array.from({ length }, () => Math.floor(next() * 256));
}


// ---------------------------------------------------------------------------------------------- floats

const elementBytes: Record<FixtureDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
const scratch = new DataView(new ArrayBuffer(4));

/** float32 → IEEE binary16 bits, rounding to nearest even like numpy and struct.pack('<e'). */
export function toHalfBits(value: number): number {
  scratch.setFloat32(0, value);
  const bits = scratch.getUint32(0);
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    const shift = 14 - halfExponent;
    const full = mantissa | 0x800000;
    let half = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half += 1;
    return sign | half;
  }
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half += 1;
  return sign | half;
}

/** float32 → bfloat16 bits, rounding to nearest even like torch's conversion. */
export function toBfloat16Bits(value: number): number {
  scratch.setFloat32(0, value);
  const bits = scratch.getUint32(0);
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Little-endian bytes of `values` in `dtype`. */
export function encodeValues(values: ArrayLike<number>, dtype: FixtureDtype): Uint8Array {
  const bytes = new Uint8Array(values.length * elementBytes[dtype]);
  const view = new DataView(bytes.buffer);
  for (let index = 0; index < values.length; index += 1) {
    const value = values[index] ?? 0;
    if (dtype === 'F32') view.setFloat32(index * 4, value, true);
    else if (dtype === 'F64') view.setFloat64(index * 8, value, true);
    else view.setUint16(index * 2, dtype === 'F16' ? toHalfBits(value) : toBfloat16Bits(value), true);
  }
  return bytes;
}

// ----------------------------------------------------------------------------------------- safetensors

export interface FixtureTensor {
  readonly shape: readonly number[];
  readonly values: ArrayLike<number>;
  readonly dtype?: FixtureDtype;
}

/**
 * A safetensors file as the safetensors library writes it: __metadata__ first, tensors ordered by dtype
 * size (largest first) then name, data packed in that order, header padded with spaces to a multiple of 8.
 */
export function safetensorsFile(tensors: Readonly<Record<string, FixtureTensor>>, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const ordered = Object.entries(tensors).sort(
    ([nameA, a], [nameB, b]) => elementBytes[b.dtype ?? 'F32'] - elementBytes[a.dtype ?? 'F32'] || (nameA < nameB ? -1 : 1),
  );
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  const data: Uint8Array[] = [];
  let offset = 0;
  for (const [name, tensor] of ordered) {
    const dtype = tensor.dtype ?? 'F32';
    const bytes = encodeValues(tensor.values, dtype);
    header[name] = { dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes.length] };
    data.push(bytes);
    offset += bytes.length;
  }
  return safetensorsFromParts(header, concat(data));
}

/** A safetensors file from a header object and data taken at their word: for lying headers. */
export function safetensorsFromParts(header: unknown, data: Uint8Array, declaredHeaderLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const file = new Uint8Array(8 + padded + data.length).fill(0x20, 8, 8 + padded);
  new DataView(file.buffer).setBigUint64(0, declaredHeaderLength ?? BigInt(padded), true);
  file.set(json, 8);
  file.set(data, 8 + padded);
  return file;
}

/** A kohya/A1111 SD 1.5 or 2.x safetensors embedding: one tensor, `emb_params`, [n, D]. */
export function kohyaSafetensorsFile(values: Float32Array, n: number, width: number, dtype: FixtureDtype = 'F32'): Uint8Array {
  return safetensorsFile({ emb_params: { shape: [n, width], values, dtype } });
}

/** An SDXL safetensors embedding: clip_l [n, 768] and clip_g [n, 1280]. */
export function sdxlSafetensorsFile(clipL: Float32Array, clipG: Float32Array, n: number, dtype: FixtureDtype = 'F32'): Uint8Array {
  return safetensorsFile({ clip_l: { shape: [n, 768], values: clipL, dtype }, clip_g: { shape: [n, 1280], values: clipG, dtype } });
}

// --------------------------------------------------------------------------------------- torch archives

export interface TorchFixtureOptions {
  readonly dtype?: FixtureDtype;
  /** Elements of storage before the tensor (filled with NaN, so reading them would be caught). */
  readonly storageOffset?: number;
  readonly archiveName?: string;
  /** 'omit' writes no byteorder record, as torch before 1.13 did. */
  readonly byteorder?: 'little' | 'big' | 'omit';
  /** Newer torch (2.5+) also writes .format_version and .storage_alignment. */
  readonly formatVersionRecords?: boolean;
}

export interface A1111Options extends TorchFixtureOptions {
  readonly name?: string;
  readonly step?: number;
  readonly checkpoint?: string | null;
  readonly checkpointName?: string | null;
  /** A1111 saves the vector it trained, which requires grad; an untrained one does not. */
  readonly requiresGrad?: boolean;
  /** Save it as a torch.nn.Parameter (pickled through _rebuild_parameter). */
  readonly parameter?: boolean;
}

const storageClasses: Record<FixtureDtype, string> = { F32: 'FloatStorage', F16: 'HalfStorage', BF16: 'BFloat16Storage', F64: 'DoubleStorage' };

export interface StorageFixture {
  readonly key: string;
  readonly bytes: Uint8Array;
  readonly numel: number;
  readonly dtype: FixtureDtype;
}

/** A storage holding `values` after `offset` NaN elements, as torch keeps the storage a view was cut from. */
export function torchStorage(key: string, values: ArrayLike<number>, dtype: FixtureDtype, offset: number): StorageFixture {
  const all = new Float32Array(offset + values.length).fill(Number.NaN);
  all.set(Array.from(values), offset);
  return { key, bytes: encodeValues(all, dtype), numel: all.length, dtype };
}

/**
 * Tensor.__reduce_ex__: _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict()).
 * The stride is contiguous row-major unless given.
 */
export function torchTensor(
  storage: StorageFixture,
  offset: number,
  size: readonly number[],
  requiresGrad: boolean,
  stride: readonly number[] = size.map((_, axis) => size.slice(axis + 1).reduce((product, dimension) => product * dimension, 1)),
): PyReduce {
  return reduce(
    pyGlobal('torch._utils', '_rebuild_tensor_v2'),
    tuple(storagePid(storage), offset, tuple(...size), tuple(...stride), requiresGrad, emptyOrderedDict()),
  );
}

/** torch.save's persistent_id for a storage: ('storage', torch.<Type>Storage, key, 'cpu', numel). */
function storagePid(storage: StorageFixture): PyValue {
  return persistent(tuple('storage', pyGlobal('torch', storageClasses[storage.dtype]), storage.key, 'cpu', storage.numel));
}

function emptyOrderedDict(): PyReduce {
  return reduce(pyGlobal('collections', 'OrderedDict'), tuple());
}

/** The records torch.save writes around a pickle, in its order. */
export function torchSaveFile(pickle: Uint8Array, storages: readonly { key: string; bytes: Uint8Array }[], options: TorchFixtureOptions = {}): Uint8Array {
  const text = (value: string): Uint8Array => new TextEncoder().encode(value);
  const records: ZipRecord[] = [{ name: 'data.pkl', data: pickle }];
  if (options.formatVersionRecords) records.push({ name: '.format_version', data: text('1') }, { name: '.storage_alignment', data: text('64') });
  if (options.byteorder !== 'omit') records.push({ name: 'byteorder', data: text(options.byteorder ?? 'little') });
  for (const storage of storages) records.push({ name: `data/${storage.key}`, data: storage.bytes });
  records.push({ name: 'version', data: text('3\n') });
  // torch's serialization id: a hash of the record names and of their CRCs, each as 20 decimal digits.
  const id = `${String(crc32(records.map((record) => record.name).join('/'))).padStart(20, '0')}${String(crc32(concat(records.map((record) => record.data)))).padStart(20, '0')}`;
  records.push({ name: '.data/serialization_id', data: text(id) });
  return torchZip(records, options.archiveName);
}

/**
 * An A1111 `.pt` embedding as `torch.save(embedding_data, path)` writes it (modules/textual_inversion):
 * {'string_to_token': {'*': 265}, 'string_to_param': {'*': vec}, 'name', 'step', 'sd_checkpoint',
 * 'sd_checkpoint_name'}, with the same '*' constant in both dicts (so the second is a memo hit).
 */
export function a1111PtFile(values: Float32Array, n: number, width: number, options: A1111Options = {}): Uint8Array {
  const dtype = options.dtype ?? 'F32';
  const offset = options.storageOffset ?? 0;
  const storage = torchStorage('0', values, dtype, offset);
  const vector = options.parameter
    ? reduce(pyGlobal('torch._utils', '_rebuild_parameter'), tuple(torchTensor(storage, offset, [n, width], false), options.requiresGrad ?? true, emptyOrderedDict()))
    : torchTensor(storage, offset, [n, width], options.requiresGrad ?? true);
  const star = new PyStr('*');
  const pickle = pickleProtocol2(
    dict([
      ['string_to_token', dict([[star, 265]])],
      ['string_to_param', dict([[star, vector]])],
      ['name', options.name ?? 'test-embedding'],
      ['step', options.step ?? 1500],
      ['sd_checkpoint', options.checkpoint === undefined ? 'abc12345' : options.checkpoint],
      ['sd_checkpoint_name', options.checkpointName === undefined ? 'v1-5-pruned-emaonly' : options.checkpointName],
    ]),
  );
  return torchSaveFile(pickle, [storage], options);
}

export interface DiffusersOptions extends TorchFixtureOptions {
  /** Older diffusers scripts saved one vector as a 1-D [D] tensor. */
  readonly oneDimensional?: boolean;
}

/** A diffusers `learned_embeds.bin`: torch.save({token: embeds.detach().cpu()}). */
export function diffusersBinFile(token: string, values: Float32Array, n: number, width: number, options: DiffusersOptions = {}): Uint8Array {
  if (options.oneDimensional && n !== 1) throw new Error('a 1-D embedding has one vector');
  return torchDictFile({ [token]: { values, shape: options.oneDimensional ? [width] : [n, width] } }, options);
}

/** torch.save of a dict of tensors, one storage each (an SDXL .pt with clip_l/clip_g, a state dict, …). */
export function torchDictFile(tensors: Readonly<Record<string, { values: ArrayLike<number>; shape: readonly number[] }>>, options: TorchFixtureOptions = {}): Uint8Array {
  const dtype = options.dtype ?? 'F32';
  const offset = options.storageOffset ?? 0;
  const storages: StorageFixture[] = [];
  const entries = Object.entries(tensors).map(([name, tensor]): [PyValue, PyValue] => {
    const storage = torchStorage(String(storages.length), tensor.values, dtype, offset);
    storages.push(storage);
    return [name, torchTensor(storage, offset, tensor.shape, false)];
  });
  return torchSaveFile(pickleProtocol2(dict(entries)), storages, options);
}

// ------------------------------------------------------------------------------------------- hostile

/** The classic: a torch archive whose data.pkl is `posix.system('…')` through GLOBAL and REDUCE. */
export function maliciousPickleFile(command = 'touch /tmp/clipgate-pwned'): Uint8Array {
  const pickle = pickleProtocol2(reduce(pyGlobal('posix', 'system'), tuple(command)));
  return torchSaveFile(pickle, []);
}

export interface ZipBombOptions {
  /** How much the entry inflates to; 1 GiB by default, from about 1 MB of deflate. */
  readonly inflatedMiB?: number;
  /** What the archive claims the entry inflates to; by default the truth. */
  readonly declaredSize?: number;
}

/**
 * A torch archive with a valid pickle whose storage entry is a deflate stream of zeros far beyond any cap.
 * The stream is built from independently compressed 1 MiB blocks (each ended by a sync flush, so they
 * concatenate), so the test never holds the inflated gigabyte itself.
 */
export function zipBombFile(options: ZipBombOptions = {}): Uint8Array {
  const mebibytes = options.inflatedMiB ?? 1024;
  const stream = deflatedZeros(mebibytes);
  const storage: StorageFixture = { key: '0', bytes: new Uint8Array(0), numel: 768, dtype: 'F32' };
  const pickle = pickleProtocol2(dict([['<bomb>', torchTensor(storage, 0, [1, 768], false)]]));
  const text = (value: string): Uint8Array => new TextEncoder().encode(value);
  return torchZip([
    { name: 'data.pkl', data: pickle },
    { name: 'byteorder', data: text('little') },
    { name: 'data/0', data: stream, deflated: true, declaredSize: options.declaredSize ?? mebibytes * 1024 * 1024 },
    { name: 'version', data: text('3\n') },
  ]);
}

/** A raw deflate stream of `mebibytes` MiB of zeros, about 1 KB per MiB, built without holding the zeros. */
export function deflatedZeros(mebibytes: number): Uint8Array {
  const block = deflateRawSync(new Uint8Array(1024 * 1024), { finishFlush: constants.Z_SYNC_FLUSH });
  return concat([...Array.from({ length: mebibytes }, () => block), deflateRawSync(new Uint8Array(0))]);
}

/** A valid SD 1.5 safetensors file cut off in the middle of its tensor data. */
export function truncatedSafetensors(): Uint8Array {
  const whole = kohyaSafetensorsFile(randomVectors(2, 768, 7), 2, 768);
  return whole.subarray(0, whole.length - 1000);
}

export type HeaderLie = 'shape' | 'offsets' | 'headerLength' | 'overlap' | 'dtype';

/** A safetensors file whose header does not match its bytes, in one of several ways. */
export function lyingSafetensorsHeader(lie: HeaderLie = 'shape'): Uint8Array {
  const data = encodeValues(randomVectors(2, 768, 11), 'F32');
  switch (lie) {
    case 'shape':
      // Claims three vectors over the bytes of two.
      return safetensorsFromParts({ emb_params: { dtype: 'F32', shape: [3, 768], data_offsets: [0, data.length] } }, data);
    case 'offsets':
      return safetensorsFromParts({ emb_params: { dtype: 'F32', shape: [2, 768], data_offsets: [4096, 4096 + data.length] } }, data);
    case 'headerLength':
      return safetensorsFromParts({ emb_params: { dtype: 'F32', shape: [2, 768], data_offsets: [0, data.length] } }, data, 1n << 40n);
    case 'overlap':
      return safetensorsFromParts(
        { a: { dtype: 'F32', shape: [1, 768], data_offsets: [0, 3072] }, b: { dtype: 'F32', shape: [1, 768], data_offsets: [1024, 4096] } },
        data,
      );
    case 'dtype':
      // F16 needs half the bytes the offsets span.
      return safetensorsFromParts({ emb_params: { dtype: 'F16', shape: [2, 768], data_offsets: [0, data.length] } }, data);
  }
}

/**
 * A torch file in the legacy (pre-1.6) format: consecutive pickles — the magic number, the protocol
 * version, sys_info, the object (storages as persistent ids with a trailing view-metadata None), the
 * storage keys — then each storage as an 8-byte element count and its bytes.
 */
export function legacyTorchFile(values: Float32Array, n: number, width: number): Uint8Array {
  const key = '94823412399456';
  const storage = persistent(tuple('storage', pyGlobal('torch', 'FloatStorage'), key, 'cpu', n * width, null));
  const tensor = reduce(pyGlobal('torch._utils', '_rebuild_tensor_v2'), tuple(storage, 0, tuple(n, width), tuple(width, 1), false, emptyOrderedDict()));
  const count = new Uint8Array(8);
  new DataView(count.buffer).setBigUint64(0, BigInt(n * width), true);
  return concat([
    pickleProtocol2(0x1950a86a20f9469cfc6cn),
    pickleProtocol2(1001),
    pickleProtocol2(dict([['protocol_version', 1001], ['little_endian', true], ['type_sizes', dict([['short', 2], ['int', 4], ['long', 4]])]])),
    pickleProtocol2(dict([['<legacy>', tensor]])),
    pickleProtocol2(list(key)),
    count,
    encodeValues(values, 'F32'),
  ]);
}

/** Bytes for hand-written pickles: numbers are single bytes, strings their UTF-8. */
export function rawBytes(...parts: readonly (number | string | Uint8Array)[]): Uint8Array {
  return concat(parts.map((part) => (typeof part === 'number' ? Uint8Array.of(part) : typeof part === 'string' ? new TextEncoder().encode(part) : part)));
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Precision of a float32 value stored in dtype and read back: half a unit in the last place, relative. */
export const roundTripTolerance: Record<FixtureDtype, number> = { F32: 0, F64: 0, F16: 2 ** -11, BF16: 2 ** -8 };

/**
 * How many of `actual` differ from `expected` by more than a stored-as-dtype rounding allows (relative,
 * with half-float subnormals' absolute step as the floor). Zero means equal within that precision.
 */
export function countOutsideTolerance(actual: Float32Array, expected: Float32Array, dtype: FixtureDtype): number {
  if (actual.length !== expected.length) return Math.max(actual.length, expected.length);
  const relative = roundTripTolerance[dtype];
  const floor = dtype === 'F16' ? 2 ** -25 : 0;
  let outside = 0;
  for (let index = 0; index < actual.length; index += 1) {
    const want = expected[index] ?? 0;
    if (Math.abs((actual[index] ?? 0) - want) > Math.max(Math.abs(want) * relative, floor)) outside += 1;
  }
  return outside;
}
