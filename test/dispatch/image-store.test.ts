import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDirectoryImageStore } from '../../src/dispatch/image-store.js';

describe('directory image store', () => {
  it('stores and serves images by name, and refuses any other name', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'clipgate-images-'));
    const store = createDirectoryImageStore(directory);
    const name = `${randomUUID()}.png`;
    await store.put(name, new Uint8Array([1, 2, 3]));
    expect(await store.get(name)).toEqual(Buffer.from([1, 2, 3]));
    expect(await store.get('../../etc/passwd')).toBeUndefined();
    await expect(store.put('../escape.png', new Uint8Array([1]))).rejects.toThrow(RangeError);
    expect(await readdir(directory)).toEqual([name]);
  });

  it('sweeps images older than their time to live, and nothing else', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'clipgate-images-'));
    const store = createDirectoryImageStore(directory);
    const [old, fresh] = [`${randomUUID()}.jpg`, `${randomUUID()}.webp`];
    await store.put(old, new Uint8Array([1]));
    await store.put(fresh, new Uint8Array([2]));
    await writeFile(join(directory, 'operator-notes.txt'), 'not an image');
    const anHourAgo = new Date(Date.now() - 3_600_000);
    await utimes(join(directory, old), anHourAgo, anHourAgo);
    await utimes(join(directory, 'operator-notes.txt'), anHourAgo, anHourAgo);
    expect(await store.sweep(60_000)).toBe(1);
    expect((await readdir(directory)).sort()).toEqual([fresh, 'operator-notes.txt'].sort());
  });
});
