import { describe, expect, it } from 'vitest';
import { EmbeddingFileError } from '../../src/embeddings/embedding-file-error.js';
import type { PickleValue } from '../../src/embeddings/pickle-values.js';
import { unpickle } from '../../src/embeddings/restricted-unpickler.js';
import { rawBytes } from '../support/embedding-fixtures.js';
import { dict, list, pickleProtocol2, PyStr, tuple } from '../support/python-pickle-writer.js';

function refusal(bytes: Uint8Array): EmbeddingFileError {
  try {
    unpickle(bytes);
  } catch (error) {
    if (error instanceof EmbeddingFileError) return error;
    throw error;
  }
  throw new Error('expected the pickle to be refused');
}

const entriesOf = (value: PickleValue): [unknown, PickleValue][] => {
  if (typeof value !== 'object' || value === null || value.kind !== 'dict') throw new Error('not a dict');
  return [...value.entries];
};

describe('unpickle', () => {
  it('reads the plain data of a protocol-2 pickle', () => {
    const shared = new PyStr('*');
    const value = unpickle(
      pickleProtocol2(
        dict([
          ['ints', tuple(0, 255, 256, 65535, 65536, -1, -(2 ** 31), 2 ** 31, -(2 ** 31) - 1, 2n ** 70n, -(2n ** 70n))],
          ['float', 0.25],
          ['flags', tuple(true, false, null)],
          ['list', list(shared, shared, 'b')],
          ['many', list(...Array.from({ length: 1500 }, (_, index) => index))],
        ]),
      ),
    );
    expect(entriesOf(value)).toEqual([
      ['ints', { kind: 'tuple', items: [0, 255, 256, 65535, 65536, -1, -(2 ** 31), 2 ** 31, -(2 ** 31) - 1, 2n ** 70n, -(2n ** 70n)] }],
      ['float', 0.25],
      ['flags', { kind: 'tuple', items: [true, false, null] }],
      ['list', { kind: 'list', items: ['*', '*', 'b'] }],
      ['many', { kind: 'list', items: Array.from({ length: 1500 }, (_, index) => index) }],
    ]);
  });

  it('reads the protocol-4 framing opcodes and the other string and bytes forms', () => {
    const value = unpickle(
      rawBytes(
        0x80, 4, 0x95, 40, 0, 0, 0, 0, 0, 0, 0,
        '(',
        0x8c, 1, 'a', 0x94,
        0x8d, 1, 0, 0, 0, 0, 0, 0, 0, 'b',
        'T', 1, 0, 0, 0, 'c',
        'U', 1, 'd',
        'B', 2, 0, 0, 0, 1, 2,
        'C', 1, 3,
        'h', 0,
        'j', 0, 0, 0, 0,
        'l.',
      ),
    );
    expect(value).toEqual({
      kind: 'list',
      items: ['a', 'b', 'c', 'd', { kind: 'bytes', bytes: Uint8Array.of(1, 2) }, { kind: 'bytes', bytes: Uint8Array.of(3) }, 'a', 'a'],
    });
  });

  it('builds dicts with DICT and lists with APPEND', () => {
    expect(unpickle(rawBytes(0x80, 2, '(', 'K', 1, 'K', 2, 'd.'))).toEqual({ kind: 'dict', ordered: false, entries: new Map([[1, 2]]) });
    expect(unpickle(rawBytes(0x80, 2, ']', 'K', 7, 'a.'))).toEqual({ kind: 'list', items: [7] });
  });

  it.each<[string, Uint8Array, RegExp]>([
    ['a byte that is no opcode', rawBytes(0x80, 2, 0xff, '.'), /byte 0xff at offset 2 is not a pickle opcode/],
    ['no STOP', rawBytes(0x80, 2, 'N'), /ends without a STOP/],
    ['an opcode cut short', rawBytes(0x80, 2, 'X', 10, 0, 0, 0, 'abc'), /ends inside the opcode at offset 2/],
    ['an 8-byte length beyond the file', rawBytes(0x80, 4, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), /claims 9223372036854775807 bytes/],
    ['a memo slot never stored', rawBytes(0x80, 2, 'h', 3, '.'), /recalls memo slot 3, which was never stored/],
    ['a pop from an empty stack', rawBytes(0x80, 2, '.'), /pops an empty stack/],
    ['a pop below an open MARK', rawBytes(0x80, 2, 'N(', 0x85, '.'), /needs 1 values on the stack/],
    ['items without a MARK', rawBytes(0x80, 2, 't.'), /needs a MARK, and none is open/],
    ['SETITEM on a list', rawBytes(0x80, 2, ']', 'K', 1, 'K', 2, 's.'), /sets items on a list, not a dict/],
    ['APPEND on a dict', rawBytes(0x80, 2, '}', 'K', 1, 'a.'), /appends to a dict, not a list/],
    ['a tuple as dict key', rawBytes(0x80, 2, '}', ')', 'K', 1, 's.'), /uses a tuple as a dict key/],
    ['invalid UTF-8', rawBytes(0x80, 2, 'X', 1, 0, 0, 0, 0xff, '.'), /not valid UTF-8/],
    ['a protocol from the future', rawBytes(0x80, 9, 'N.'), /protocol 9/],
    ['a GLOBAL without a newline', rawBytes(0x80, 2, 'c', 'x'.repeat(300)), /no short newline-terminated name/],
    ['a persistent id that is not a storage', rawBytes(0x80, 2, 'X', 1, 0, 0, 0, 'x', 'Q.'), /persistent id is a string/],
    [
      'a persistent id with an unknown storage class',
      rawBytes(0x80, 2, '(', 'X', 7, 0, 0, 0, 'storage', 'ccollections\nOrderedDict\n', 'X', 1, 0, 0, 0, '0', 'X', 3, 0, 0, 0, 'cpu', 'K', 1, 'tQ.'),
      /names collections\.OrderedDict as its storage class/,
    ],
    ['OrderedDict called with arguments', rawBytes(0x80, 2, 'ccollections\nOrderedDict\n', ']', 0x85, 'R.'), /called with arguments/],
  ])('refuses %s as unparseable', (_, bytes, message) => {
    const error = refusal(bytes);
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(message);
  });

  it.each(['POP', 'DUP', 'PUT', 'GET', 'PERSID', 'LONG4', 'BINBYTES8', 'EMPTY_SET', 'FROZENSET', 'NEWOBJ_EX', 'BYTEARRAY8', 'NEXT_BUFFER'])(
    'refuses %s as unsafe: torch.save never writes it',
    (name) => {
      const codes: Record<string, number> = {
        POP: 0x30,
        DUP: 0x32,
        PUT: 0x70,
        GET: 0x67,
        PERSID: 0x50,
        LONG4: 0x8b,
        BINBYTES8: 0x8e,
        EMPTY_SET: 0x8f,
        FROZENSET: 0x91,
        NEWOBJ_EX: 0x92,
        BYTEARRAY8: 0x96,
        NEXT_BUFFER: 0x97,
      };
      const error = refusal(rawBytes(0x80, 2, 'N', codes[name] ?? 0, '.'));
      expect(error.problem).toBe('unsafe');
      expect(error.message).toContain(`opcode ${name} `);
    },
  );
});
