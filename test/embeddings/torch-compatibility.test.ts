import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { a1111PtFile, diffusersBinFile, randomVectors } from '../support/embedding-fixtures.js';

/**
 * The torch-format fixtures the gateway's tests are built on, checked against PyTorch itself: what
 * torch.load (weights_only, its own safe loader) reads from them must be what the fixture writers meant.
 */
const python = process.env['CLIPGATE_WORKER_PYTHON'] ?? fileURLToPath(new URL('../../worker/.venv/bin/python', import.meta.url));

const readWithTorch = `
import json, sys, torch
result = {}
for path in sys.argv[1:]:
    data = torch.load(path, weights_only=True, map_location="cpu")
    tensor = data["string_to_param"]["*"] if "string_to_param" in data else next(iter(data.values()))
    result[path] = {"shape": list(tensor.shape), "values": tensor.flatten().tolist()[:16], "sum": float(tensor.double().sum())}
print(json.dumps(result))
`;

describe('torch-format fixtures', () => {
  it('load in PyTorch (torch.load, weights_only) with the shapes and values they were written with', async () => {
    expect(existsSync(python), `the worker's Python environment is missing at ${python}: run ./scripts/install-test-dependencies.sh`).toBe(true);
    const directory = await mkdtemp(join(tmpdir(), 'clipgate-torch-'));
    const a1111 = randomVectors(3, 768, 5);
    const diffusers = randomVectors(1, 768, 6);
    const files = { [join(directory, 'a1111.pt')]: { bytes: a1111PtFile(a1111, 3, 768), values: a1111, shape: [3, 768] }, [join(directory, 'learned_embeds.bin')]: { bytes: diffusersBinFile('<cat-toy>', diffusers, 1, 768), values: diffusers, shape: [1, 768] } };
    for (const [path, file] of Object.entries(files)) await writeFile(path, file.bytes);

    const { stdout } = await promisify(execFile)(python, ['-c', readWithTorch, ...Object.keys(files)], { timeout: 60_000 });
    const read = JSON.parse(stdout) as Record<string, { shape: number[]; values: number[]; sum: number }>;
    for (const [path, file] of Object.entries(files)) {
      const loaded = read[path];
      const shape = file.shape[0] === 1 && loaded?.shape.length === 1 ? [768] : file.shape;
      expect(loaded?.shape).toEqual(shape);
      expect(loaded?.values).toEqual([...file.values.subarray(0, 16)]);
      expect(loaded?.sum).toBeCloseTo([...file.values].reduce((sum, value) => sum + value, 0), 3);
    }
  });
});
