import { describe, expect, it } from 'vitest';
import { inspectEmbeddingFile } from '../../src/embeddings/inspect-embedding.js';
import {
  a1111PtFile,
  deflatedZeros,
  kohyaSafetensorsFile,
  legacyTorchFile,
  maliciousPickleFile,
  randomBytes,
  randomVectors,
  rawBytes,
  torchSaveFile,
  torchStorage,
  torchTensor,
  zipBombFile,
} from '../support/embedding-fixtures.js';
import { refusal } from '../support/inspection-refusal.js';
import { dict, pickleProtocol2, tuple } from '../support/python-pickle-writer.js';
import { torchZip, type ZipRecord } from '../support/torch-zip-writer.js';


const text = (value: string): Uint8Array => new TextEncoder().encode(value);

/** A torch archive around a hand-written data.pkl. */
const torchFileWithPickle = (pickle: Uint8Array): Uint8Array => torchSaveFile(pickle, []);

describe('hostile pickles', () => {
  it('refuses GLOBAL posix.system + REDUCE as unsafe, naming the global', async () => {
    const error = await refusal(maliciousPickleFile());
    expect(error.problem).toBe('unsafe');
    expect(error.message).toMatch(/imports "posix\.system"; only collections\.OrderedDict, torch\._utils\._rebuild_tensor_v2, .* may be imported/);
    expect(error.message).not.toMatch(/clipgate-pwned/);
  });

  it.each<[string, Uint8Array, RegExp]>([
    ['builtins.eval through STACK_GLOBAL (protocol 4)', rawBytes(0x80, 4, 0x8c, 8, 'builtins', 0x8c, 4, 'eval', 0x93, 0x8c, 2, '42', 0x85, 0x52, 0x2e), /imports "builtins\.eval"/],
    ['os.system through GLOBAL', rawBytes(0x80, 2, 'cos\nsystem\n', 'X', 2, 0, 0, 0, 'ls', 0x85, 'R.'), /imports "os\.system"/],
    ['a protocol-0 pickle without PROTO', rawBytes("cposix\nsystem\n(S'ls'\ntR."), /imports "posix\.system"/],
    ['a torch lookalike outside the allowlist', rawBytes(0x80, 2, 'ctorch.serialization\n_get_restore_location\n', ')R.'), /imports "torch\.serialization\._get_restore_location"/],
    ['INST', rawBytes(0x80, 2, '(', 'ios\nsystem\n', '.'), /opcode INST \(0x69\) at offset 3 is not allowed/],
    ['OBJ', rawBytes(0x80, 2, '(', 'o', '.'), /opcode OBJ \(0x6f\)/],
    ['NEWOBJ', rawBytes(0x80, 2, 'ccollections\nOrderedDict\n', ')', 0x81, '.'), /opcode NEWOBJ \(0x81\)/],
    ['EXT1', rawBytes(0x80, 2, 0x82, 1, '.'), /opcode EXT1 \(0x82\)/],
    ['REDUCE on a storage class', rawBytes(0x80, 2, 'ctorch\nFloatStorage\n', ')R.'), /calls torch\.FloatStorage with REDUCE/],
    ['REDUCE on something that is not a global', rawBytes(0x80, 2, 'X', 1, 0, 0, 0, 'x', ')R.'), /calls a string with REDUCE/],
    ['BUILD on a plain dict', rawBytes(0x80, 2, '}', '}', 'b.'), /BUILD at offset 4 targets a dict; only an OrderedDict may be built/],
  ])('refuses %s as unsafe', async (_, pickle, message) => {
    const error = await refusal(torchFileWithPickle(pickle));
    expect(error.problem).toBe('unsafe');
    expect(error.message).toMatch(message);
  });

  it('quotes a hostile global name instead of echoing it raw', async () => {
    const error = await refusal(torchFileWithPickle(rawBytes(0x80, 2, `c${'a'.repeat(100)}\u202e\x1b[31m\nx\n.`)));
    expect(error.problem).toBe('unsafe');
    expect(error.message).not.toContain('\u202e');
    expect(error.message).not.toContain('\x1b');
    expect(error.message).toMatch(/"a{80}"…/);
  });

  it('lets BUILD set attributes on an OrderedDict, as torch.save writes for state dicts', async () => {
    // {'<t>': OrderedDict()} where the OrderedDict gets a _metadata attribute through BUILD.
    const pickle = rawBytes(0x80, 2, '}', 'X', 3, 0, 0, 0, '<t>', 'ccollections\nOrderedDict\n', ')R', '}', 'X', 9, 0, 0, 0, '_metadata', '}', 's', 'b', 's.');
    const error = await refusal(torchFileWithPickle(pickle));
    // Safe to read; it simply holds no tensor.
    expect(error.problem).toBe('unparseable');
  });

  it('refuses a pickle that is not a dict of tensors', async () => {
    const error = await refusal(torchFileWithPickle(pickleProtocol2(tuple(1, 2))));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/holds a tuple; an embedding file holds a dict/);
  });
});

describe('unpickler caps', () => {
  it('stops a stack that grows without bound', async () => {
    const error = await refusal(torchFileWithPickle(rawBytes(0x80, 2, 'N'.repeat(10_001), '.')));
    expect(error.problem).toBe('tooLarge');
    expect(error.message).toMatch(/stack grows beyond 10000 values/);
  });

  it('stops a memo that grows without bound', async () => {
    const puts = Array.from({ length: 10_001 }, (_, index) => rawBytes('r', index & 0xff, (index >> 8) & 0xff, 0, 0));
    const error = await refusal(torchFileWithPickle(rawBytes(0x80, 2, 'N', ...puts, '.')));
    expect(error.problem).toBe('tooLarge');
    expect(error.message).toMatch(/memoizes more than 10000 values/);
  });

  it('stops MARKs nested too deeply', async () => {
    const error = await refusal(torchFileWithPickle(rawBytes(0x80, 2, '('.repeat(101), '.')));
    expect(error.problem).toBe('tooLarge');
    expect(error.message).toMatch(/nests more than 100 MARKs/);
  });

  it('refuses a data.pkl over 1 MiB as too large', async () => {
    const pickle = rawBytes(0x80, 2, 'X', ...[0, 0, 0x10, 0], new Uint8Array(1024 * 1024), '.');
    const error = await refusal(torchFileWithPickle(pickle));
    expect(error.problem).toBe('tooLarge');
    expect(error.message).toMatch(/data\.pkl" declares 1048584 uncompressed bytes; at most 1048576 are accepted/);
  });
});

describe('zip bombs and hostile archives', () => {
  it('refuses an entry that declares 1 GiB before inflating any of it', async () => {
    const started = Date.now();
    const error = await refusal(zipBombFile());
    expect(error.problem).toBe('tooLarge');
    expect(error.message).toMatch(/"archive\/data\/0" declares 1073741824 uncompressed bytes; at most 67108864 are accepted/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('stops an entry that lies about its size as soon as it inflates past the lie', async () => {
    const error = await refusal(zipBombFile({ declaredSize: 3072 }));
    expect(error.problem).toBe('tooLarge');
    expect(error.message).toMatch(/"archive\/data\/0" inflates beyond the 3072 bytes it declares/);
  });

  it('honours a smaller maxUncompressedBytes', async () => {
    const error = await refusal(zipBombFile({ inflatedMiB: 8 }), { maxUncompressedBytes: 1024 * 1024 });
    expect(error.problem).toBe('tooLarge');
    expect(error.message).toMatch(/at most 1048576 are accepted/);
    // The same cap leaves a real embedding alone.
    await expect(inspectEmbeddingFile(a1111PtFile(randomVectors(2, 768, 1), 2, 768), { maxUncompressedBytes: 1024 * 1024 })).resolves.toMatchObject({
      vectors: 2,
    });
  });

  it('counts every entry against the total, read or not', async () => {
    const error = await refusal(a1111PtFile(randomVectors(75, 1024, 2), 75, 1024), { maxUncompressedBytes: 200_000 });
    expect(error.problem).toBe('tooLarge');
    expect(error.message).toMatch(/declares 307200 uncompressed bytes; at most 200000/);
  });

  it('refuses more than 1000 entries', async () => {
    const records: ZipRecord[] = Array.from({ length: 1001 }, (_, index) => ({ name: `data/${index}`, data: text('x') }));
    const error = await refusal(torchZip(records));
    expect(error.problem).toBe('tooLarge');
    expect(error.message).toMatch(/lists 1001 entries; at most 1000/);
  });

  it.each<[string, ZipRecord, RegExp]>([
    ['an encrypted entry', { name: 'data.pkl', data: text('xxxx'), flags: 0x0809, method: 8 }, /"archive\/data\.pkl" is encrypted/],
    ['bzip2 compression', { name: 'data.pkl', data: text('xxxx'), method: 12 }, /compression method 12; only stored \(0\) and deflate \(8\)/],
  ])('refuses %s as unparseable', async (_, record, message) => {
    const error = await refusal(torchZip([record]));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(message);
  });

  it('refuses two entries with the same name (which one would torch read?)', async () => {
    const pickle = pickleProtocol2(dict([]));
    const error = await refusal(torchZip([{ name: 'data.pkl', data: pickle }, { name: 'data.pkl', data: pickle }]));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/two entries named "archive\/data\.pkl"/);
  });

  it('refuses a zip that is not a torch archive', async () => {
    const error = await refusal(torchZip([{ name: 'readme.txt', data: text('hello') }], 'docs'));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/has no "docs\/data\.pkl", so it is not a torch\.save file/);
  });

  it.each<[string, ZipRecord[], RegExp]>([
    [
      'an entry outside the archive folder',
      [{ name: 'data.pkl', data: pickleProtocol2(dict([])) }, { name: '', fullName: 'elsewhere/data/0', data: text('x') }],
      /"elsewhere\/data\/0" is outside the folder "archive\/"/,
    ],
    ['entries in no folder at all', [{ name: '', fullName: 'data.pkl', data: pickleProtocol2(dict([])) }], /does not keep its entries in one folder/],
  ])('refuses %s', async (_, records, message) => {
    const error = await refusal(torchZip(records));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(message);
  });

  it('never inflates an entry it does not need', async () => {
    // A bomb that lies about its size passes the listing; since no tensor refers to it, it is never opened.
    const storage = torchStorage('0', randomVectors(1, 768, 6), 'F32', 0);
    const withBomb = torchZip([
      { name: 'data.pkl', data: pickleProtocol2(dict([['<t>', torchTensor(storage, 0, [1, 768], false)]])) },
      { name: 'data/0', data: storage.bytes },
      { name: 'data/1', data: deflatedZeros(1024), deflated: true, declaredSize: 10 },
    ]);
    await expect(inspectEmbeddingFile(withBomb)).resolves.toMatchObject({ vectors: 1 });
  });

  it('refuses a truncated archive', async () => {
    const whole = a1111PtFile(randomVectors(1, 768, 3), 1, 768);
    const error = await refusal(whole.subarray(0, whole.length - 30));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/zip archive is malformed/);
  });
});

describe('files that are no embedding format', () => {
  it('refuses random bytes', async () => {
    const error = await refusal(randomBytes(4096, 99));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/neither safetensors nor a torch zip archive/);
  });

  it('refuses an empty file', async () => {
    expect((await refusal(new Uint8Array(0))).problem).toBe('unparseable');
  });

  it('refuses a legacy (pre-1.6) torch pickle stream without unpickling it', async () => {
    const error = await refusal(legacyTorchFile(randomVectors(1, 768, 4), 1, 768));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/legacy \(pre-1\.6\) format/);
  });

  it('detects the format from the content, whatever the file would be named', async () => {
    const values = randomVectors(1, 768, 5);
    await expect(inspectEmbeddingFile(kohyaSafetensorsFile(values, 1, 768))).resolves.toMatchObject({ format: 'safetensors' });
    await expect(inspectEmbeddingFile(a1111PtFile(values, 1, 768))).resolves.toMatchObject({ format: 'a1111-pt' });
  });

  it('stops at STOP: a GLOBAL after it is never read', async () => {
    const error = await refusal(torchFileWithPickle(rawBytes(0x80, 2, 'K', 1, '.', 'cposix\nsystem\n')));
    expect(error.problem).toBe('unparseable');
    expect(error.message).toMatch(/holds a number; an embedding file holds a dict/);
  });
});
