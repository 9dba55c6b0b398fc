import { EmbeddingFileError } from './embedding-file-error.js';
import { opcodeNames, supportedOpcodes } from './pickle-opcodes.js';
import { describeKind, isKind, type PickleKey, type PickleValue } from './pickle-values.js';
import { quoteUntrusted } from './quote-untrusted.js';
import { allowedGlobals, isAllowedGlobal, loadPersistentStorage, reduceAllowedGlobal } from './torch-globals.js';

/**
 * A pickle reader that executes nothing. It implements the opcodes torch.save writes for a dict of tensors
 * as operations on inert data (pickle-values.ts); a global outside the torch allowlist, or any other opcode,
 * stops it with 'unsafe' before anything is built from it. Python's own Unpickler is the reference for each
 * opcode's stack effect; where Python would call a method on an arbitrary object (APPEND, SETITEM, BUILD),
 * this one only accepts the container torch.save uses.
 */

export interface UnpicklerLimits {
  /** Values on the stack, across all open MARKs. */
  readonly maxStack: number;
  readonly maxMemo: number;
  /** Open MARKs at once: how deeply nested a tuple, list or dict being built may be. */
  readonly maxMarks: number;
}

/** An embedding's pickle uses about 25 memo slots and a stack of about 20; these leave room for big dicts. */
export const defaultUnpicklerLimits: UnpicklerLimits = { maxStack: 10_000, maxMemo: 10_000, maxMarks: 100 };

const MAX_PROTOCOL = 5;
/** GLOBAL's module and name lines; the longest allowed one is 30 characters. */
const MAX_GLOBAL_LINE = 256;

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

export function unpickle(bytes: Uint8Array, limits: UnpicklerLimits = defaultUnpicklerLimits): PickleValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: PickleValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PickleValue>();
  let position = 0;
  let opcodeAt = 0;

  function take(length: number): Uint8Array {
    if (length > bytes.length - position) throw unparseable(`the pickle ends inside the opcode at offset ${opcodeAt}`);
    const slice = bytes.subarray(position, position + length);
    position += length;
    return slice;
  }
  function u8(): number {
    return take(1)[0] ?? 0;
  }
  function u16(): number {
    take(2);
    return view.getUint16(position - 2, true);
  }
  function u32(): number {
    take(4);
    return view.getUint32(position - 4, true);
  }
  function i32(): number {
    take(4);
    return view.getInt32(position - 4, true);
  }
  function u64(): number {
    take(8);
    const value = view.getBigUint64(position - 8, true);
    // Every 8-byte length is a length of something in this file, so anything past its end is a lie.
    if (value > BigInt(bytes.length)) throw unparseable(`the opcode at offset ${opcodeAt} claims ${value} bytes, more than the pickle holds`);
    return Number(value);
  }
  function line(): string {
    const end = bytes.indexOf(0x0a, position);
    if (end < 0 || end - position > MAX_GLOBAL_LINE) throw unparseable(`the GLOBAL at offset ${opcodeAt} has no short newline-terminated name`);
    return decodeUtf8(take(end - position + 1).subarray(0, -1));
  }

  function push(value: PickleValue): void {
    if (stack.length >= limits.maxStack) throw tooLarge(`the pickle's stack grows beyond ${limits.maxStack} values`);
    stack.push(value);
  }
  function floor(): number {
    return marks.at(-1) ?? 0;
  }
  function pop(): PickleValue {
    if (stack.length <= floor()) throw unparseable(`the opcode at offset ${opcodeAt} pops an empty stack`);
    return stack.pop() ?? null;
  }
  function top(): PickleValue {
    if (stack.length <= floor()) throw unparseable(`the opcode at offset ${opcodeAt} reads an empty stack`);
    return stack[stack.length - 1] ?? null;
  }
  function popMark(): PickleValue[] {
    const start = marks.pop();
    if (start === undefined) throw unparseable(`the opcode at offset ${opcodeAt} needs a MARK, and none is open`);
    return stack.splice(start);
  }
  function popItems(count: number): PickleValue[] {
    if (stack.length - floor() < count) throw unparseable(`the opcode at offset ${opcodeAt} needs ${count} values on the stack`);
    return stack.splice(stack.length - count);
  }
  function memoize(index: number): void {
    if (!memo.has(index) && memo.size >= limits.maxMemo) throw tooLarge(`the pickle memoizes more than ${limits.maxMemo} values`);
    memo.set(index, top());
  }
  function recall(index: number): void {
    const value = memo.get(index);
    if (value === undefined) throw unparseable(`the opcode at offset ${opcodeAt} recalls memo slot ${index}, which was never stored`);
    push(value);
  }
  function importGlobal(module: string, name: string): void {
    const qualified = `${module}.${name}`;
    if (!isAllowedGlobal(qualified)) {
      throw new EmbeddingFileError(
        'unsafe',
        `the pickle imports ${quoteUntrusted(qualified)}; only ${allowedGlobals.join(', ')} may be imported, since loading anything else could run code`,
      );
    }
    push({ kind: 'global', name: qualified });
  }
  function setItems(target: PickleValue, items: PickleValue[]): void {
    if (!isKind(target, 'dict')) throw unparseable(`the opcode at offset ${opcodeAt} sets items on a ${describeKind(target)}, not a dict`);
    if (items.length % 2 !== 0) throw unparseable(`the opcode at offset ${opcodeAt} has a key without a value`);
    for (let index = 0; index < items.length; index += 2) {
      target.entries.set(toKey(items[index] ?? null), items[index + 1] ?? null);
    }
  }
  function append(target: PickleValue, items: PickleValue[]): void {
    if (!isKind(target, 'list')) throw unparseable(`the opcode at offset ${opcodeAt} appends to a ${describeKind(target)}, not a list`);
    target.items.push(...items);
  }
  function toKey(value: PickleValue): PickleKey {
    if (typeof value === 'object' && value !== null) {
      throw unparseable(`the opcode at offset ${opcodeAt} uses a ${describeKind(value)} as a dict key; embedding dicts are keyed by strings`);
    }
    return value;
  }

  while (position < bytes.length) {
    opcodeAt = position;
    const code = u8();
    const name = opcodeNames.get(code);
    if (name === undefined) throw unparseable(`byte 0x${hex(code)} at offset ${opcodeAt} is not a pickle opcode`);
    if (!supportedOpcodes.has(name)) {
      throw new EmbeddingFileError('unsafe', `pickle opcode ${name} (0x${hex(code)}) at offset ${opcodeAt} is not allowed: torch.save never writes it for an embedding`);
    }
    switch (name) {
      case 'PROTO': {
        const protocol = u8();
        if (protocol > MAX_PROTOCOL) throw unparseable(`the pickle uses protocol ${protocol}; protocols up to ${MAX_PROTOCOL} exist`);
        break;
      }
      case 'FRAME':
        // Frames only batch reads; their length is checked for sanity and otherwise ignored.
        u64();
        break;
      case 'EMPTY_DICT':
        push({ kind: 'dict', ordered: false, entries: new Map() });
        break;
      case 'EMPTY_LIST':
        push({ kind: 'list', items: [] });
        break;
      case 'EMPTY_TUPLE':
        push({ kind: 'tuple', items: [] });
        break;
      case 'MARK':
        if (marks.length >= limits.maxMarks) throw tooLarge(`the pickle nests more than ${limits.maxMarks} MARKs`);
        marks.push(stack.length);
        break;
      case 'BINPUT':
        memoize(u8());
        break;
      case 'LONG_BINPUT':
        memoize(u32());
        break;
      case 'MEMOIZE':
        memoize(memo.size);
        break;
      case 'BINGET':
        recall(u8());
        break;
      case 'LONG_BINGET':
        recall(u32());
        break;
      case 'BINUNICODE':
        push(decodeUtf8(take(u32())));
        break;
      case 'SHORT_BINUNICODE':
        push(decodeUtf8(take(u8())));
        break;
      case 'BINUNICODE8':
        push(decodeUtf8(take(u64())));
        break;
      case 'BINSTRING': {
        const length = i32();
        if (length < 0) throw unparseable(`the BINSTRING at offset ${opcodeAt} has a negative length`);
        push(latin1.decode(take(length)));
        break;
      }
      case 'SHORT_BINSTRING':
        push(latin1.decode(take(u8())));
        break;
      case 'BINBYTES':
        push({ kind: 'bytes', bytes: take(u32()) });
        break;
      case 'SHORT_BINBYTES':
        push({ kind: 'bytes', bytes: take(u8()) });
        break;
      case 'BININT':
        push(i32());
        break;
      case 'BININT1':
        push(u8());
        break;
      case 'BININT2':
        push(u16());
        break;
      case 'LONG1':
        push(decodeLong(take(u8())));
        break;
      case 'BINFLOAT':
        take(8);
        push(view.getFloat64(position - 8, false));
        break;
      case 'NONE':
        push(null);
        break;
      case 'NEWTRUE':
        push(true);
        break;
      case 'NEWFALSE':
        push(false);
        break;
      case 'TUPLE':
        push({ kind: 'tuple', items: popMark() });
        break;
      case 'TUPLE1':
      case 'TUPLE2':
      case 'TUPLE3':
        push({ kind: 'tuple', items: popItems(code - 0x84) });
        break;
      case 'LIST':
        push({ kind: 'list', items: popMark() });
        break;
      case 'DICT': {
        const items = popMark();
        const dict: PickleValue = { kind: 'dict', ordered: false, entries: new Map() };
        setItems(dict, items);
        push(dict);
        break;
      }
      case 'APPEND': {
        const item = pop();
        append(top(), [item]);
        break;
      }
      case 'APPENDS': {
        const items = popMark();
        append(top(), items);
        break;
      }
      case 'SETITEM': {
        const [key, value] = popItems(2);
        setItems(top(), [key ?? null, value ?? null]);
        break;
      }
      case 'SETITEMS': {
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 'GLOBAL': {
        const module = line();
        importGlobal(module, line());
        break;
      }
      case 'STACK_GLOBAL': {
        const [module, qualifiedName] = popItems(2);
        if (typeof module !== 'string' || typeof qualifiedName !== 'string') {
          throw unparseable(`the STACK_GLOBAL at offset ${opcodeAt} names its global with a ${describeKind(module)} and a ${describeKind(qualifiedName)}`);
        }
        importGlobal(module, qualifiedName);
        break;
      }
      case 'REDUCE': {
        const [callable, args] = popItems(2);
        push(reduceAllowedGlobal(callable, args));
        break;
      }
      case 'BINPERSID':
        push(loadPersistentStorage(pop()));
        break;
      case 'BUILD': {
        pop();
        const target = top();
        // torch.save writes BUILD only to restore attributes (such as _metadata) on an OrderedDict; they
        // say nothing about tensors, so the state is dropped rather than applied.
        if (!isKind(target, 'dict') || !target.ordered) {
          throw new EmbeddingFileError('unsafe', `the pickle's BUILD at offset ${opcodeAt} targets a ${describeKind(target)}; only an OrderedDict may be built`);
        }
        break;
      }
      case 'STOP':
        return pop();
      default:
        throw new Error(`restricted unpickler: opcode ${name} is listed as supported but not implemented`);
    }
  }
  throw unparseable('the pickle ends without a STOP opcode');
}

/** LONG1's payload: a little-endian two's-complement integer; a number whenever it is exact. */
function decodeLong(payload: Uint8Array): number | bigint {
  let value = 0n;
  for (let index = payload.length - 1; index >= 0; index -= 1) value = (value << 8n) | BigInt(payload[index] ?? 0);
  const last = payload.at(-1);
  if (last !== undefined && last >= 0x80) value -= 1n << BigInt(payload.length * 8);
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw unparseable('a pickle string is not valid UTF-8');
  }
}

function hex(code: number): string {
  return code.toString(16).padStart(2, '0');
}

function unparseable(message: string): EmbeddingFileError {
  return new EmbeddingFileError('unparseable', message);
}

function tooLarge(message: string): EmbeddingFileError {
  return new EmbeddingFileError('tooLarge', message);
}
