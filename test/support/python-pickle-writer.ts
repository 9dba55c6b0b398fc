/**
 * A pickler for tests that writes what CPython's pickle.Pickler(protocol=2) writes for the same object
 * graph, opcode for opcode and memo slot for memo slot — so the fixtures are the bytes torch.save produces,
 * not an approximation (checked against CPython with stand-in torch globals; see the embedding tests).
 *
 * Python's memo is keyed by object identity; here it is keyed by JS identity, with two conveniences:
 * a global is one object per qualified name (as a Python class or function is), and a plain JS string is a
 * fresh object at every use (wrap it in `PyStr` to share one, as Python shares a code object's constants).
 */

export type PyValue = null | boolean | number | bigint | string | PyStr | PyTuple | PyList | PyDict | PyGlobal | PyReduce | PyPersistent;

export class PyStr {
  constructor(readonly value: string) {}
}

export interface PyTuple {
  readonly kind: 'tuple';
  readonly items: readonly PyValue[];
}

export interface PyList {
  readonly kind: 'list';
  readonly items: readonly PyValue[];
}

export interface PyDict {
  readonly kind: 'dict';
  readonly entries: readonly (readonly [PyValue, PyValue])[];
}

export interface PyGlobal {
  readonly kind: 'global';
  readonly module: string;
  readonly name: string;
}

/** `callable(*args)` as __reduce__ returns it. */
export interface PyReduce {
  readonly kind: 'reduce';
  readonly callable: PyGlobal;
  readonly args: PyTuple;
}

/** What a pickler's persistent_id hook returned for an object: the id is pickled, then BINPERSID. */
export interface PyPersistent {
  readonly kind: 'persistent';
  readonly pid: PyTuple;
}

export const tuple = (...items: PyValue[]): PyTuple => ({ kind: 'tuple', items });
export const list = (...items: PyValue[]): PyList => ({ kind: 'list', items });
export const dict = (entries: readonly (readonly [PyValue, PyValue])[]): PyDict => ({ kind: 'dict', entries });
export const reduce = (callable: PyGlobal, args: PyTuple): PyReduce => ({ kind: 'reduce', callable, args });
export const persistent = (pid: PyTuple): PyPersistent => ({ kind: 'persistent', pid });

const globals = new Map<string, PyGlobal>();
export function pyGlobal(module: string, name: string): PyGlobal {
  const key = `${module}\n${name}`;
  let found = globals.get(key);
  if (found === undefined) {
    found = { kind: 'global', module, name };
    globals.set(key, found);
  }
  return found;
}

const BATCH_SIZE = 1000;

export function pickleProtocol2(value: PyValue): Uint8Array {
  const out: number[] = [0x80, 2];
  const memo = new Map<object, number>();

  const byte = (...values: number[]): void => {
    out.push(...values);
  };
  const le = (value: number, bytes: number): void => {
    for (let index = 0; index < bytes; index += 1) out.push(Math.floor(value / 2 ** (8 * index)) & 0xff);
  };
  const text = (value: string): void => {
    out.push(...new TextEncoder().encode(value));
  };
  const memoize = (object: object): void => {
    const index = memo.size;
    memo.set(object, index);
    if (index < 256) byte(0x71, index);
    else {
      byte(0x72);
      le(index, 4);
    }
  };

  const save = (value: PyValue): void => {
    if (typeof value === 'object' && value !== null) {
      const slot = memo.get(value);
      if (slot !== undefined) {
        if (slot < 256) byte(0x68, slot);
        else {
          byte(0x6a);
          le(slot, 4);
        }
        return;
      }
    }
    if (value === null) return byte(0x4e);
    if (value === true) return byte(0x88);
    if (value === false) return byte(0x89);
    if (typeof value === 'number' && !Number.isInteger(value)) {
      byte(0x47);
      const bytes = new Uint8Array(8);
      new DataView(bytes.buffer).setFloat64(0, value, false);
      return byte(...bytes);
    }
    if (typeof value === 'number' || typeof value === 'bigint') return saveInt(BigInt(value));
    if (typeof value === 'string') return saveString(value, {});
    if (value instanceof PyStr) return saveString(value.value, value);
    switch (value.kind) {
      case 'tuple':
        return saveTuple(value);
      case 'list':
        byte(0x5d);
        memoize(value);
        return saveAppends(value.items);
      case 'dict':
        byte(0x7d);
        memoize(value);
        return saveItems(value.entries);
      case 'global':
        byte(0x63);
        text(`${value.module}\n${value.name}\n`);
        return memoize(value);
      case 'reduce':
        save(value.callable);
        save(value.args);
        byte(0x52);
        return memoize(value);
      case 'persistent':
        save(value.pid);
        return byte(0x51);
    }
  };

  const saveInt = (value: bigint): void => {
    if (value >= 0n && value <= 0xffn) return byte(0x4b, Number(value));
    if (value >= 0n && value <= 0xffffn) {
      byte(0x4d);
      return le(Number(value), 2);
    }
    if (value >= -(2n ** 31n) && value < 2n ** 31n) {
      byte(0x4a);
      return le(Number(BigInt.asUintN(32, value)), 4);
    }
    // LONG1: the shortest two's-complement little-endian encoding, as pickle.encode_long makes it.
    const payload: number[] = [];
    let rest = value;
    do {
      payload.push(Number(BigInt.asUintN(8, rest)));
      rest >>= 8n;
    } while (!((rest === 0n && (payload.at(-1) ?? 0) < 0x80) || (rest === -1n && (payload.at(-1) ?? 0) >= 0x80)));
    byte(0x8a, payload.length, ...payload);
  };

  const saveString = (value: string, identity: object): void => {
    const encoded = new TextEncoder().encode(value);
    byte(0x58);
    le(encoded.length, 4);
    byte(...encoded);
    memoize(identity);
  };

  const saveTuple = (value: PyTuple): void => {
    const count = value.items.length;
    if (count === 0) return byte(0x29);
    if (count <= 3) {
      value.items.forEach(save);
      byte(0x84 + count);
      return memoize(value);
    }
    byte(0x28);
    value.items.forEach(save);
    byte(0x74);
    memoize(value);
  };

  const saveAppends = (items: readonly PyValue[]): void => {
    for (let start = 0; start < items.length; start += BATCH_SIZE) {
      const batch = items.slice(start, start + BATCH_SIZE);
      if (batch.length > 1) {
        byte(0x28);
        batch.forEach(save);
        byte(0x65);
      } else {
        save(batch[0] ?? null);
        byte(0x61);
      }
    }
  };

  const saveItems = (entries: readonly (readonly [PyValue, PyValue])[]): void => {
    for (let start = 0; start < entries.length; start += BATCH_SIZE) {
      const batch = entries.slice(start, start + BATCH_SIZE);
      if (batch.length > 1) {
        byte(0x28);
        for (const [key, item] of batch) {
          save(key);
          save(item);
        }
        byte(0x75);
      } else {
        const [key, item] = batch[0] ?? [null, null];
        save(key);
        save(item);
        byte(0x73);
      }
    }
  };

  save(value);
  byte(0x2e);
  return Uint8Array.from(out);
}
