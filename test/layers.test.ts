import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The layering rules (.dependency-cruiser.cjs, run by `npm run lint` in the test command) catch what they
 * say: each is shown a small tree that breaks it, and must refuse it by name.
 */
const root = fileURLToPath(new URL('..', import.meta.url));
const trees: string[] = [];
afterAll(() => {
  for (const tree of trees) rmSync(tree, { recursive: true, force: true });
});

function cruise(files: Record<string, string>): Promise<{ code: number; output: string }> {
  const tree = mkdtempSync(join(tmpdir(), 'clipgate-layers-'));
  trees.push(tree);
  writeFileSync(join(tree, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true } }));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(tree, path)), { recursive: true });
    writeFileSync(join(tree, path), text);
  }
  return new Promise((resolve) => {
    execFile(join(root, 'node_modules/.bin/depcruise'), ['src', '--config', join(root, '.dependency-cruiser.cjs'), '--output-type', 'err'], { cwd: tree }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

describe('the layering rules', () => {
  it.each([
    ['nothing-below-api-imports-api', { 'src/dispatch/pool.ts': "import { route } from '../api/route.js';\nexport const pool = route;\n", 'src/api/route.ts': 'export const route = 1;\n' }],
    ['nothing-below-tasks-imports-tasks', { 'src/ledger/store.ts': "import { task } from '../tasks/task.js';\nexport const store = task;\n", 'src/tasks/task.ts': 'export const task = 1;\n' }],
    ['nothing-below-models-imports-models', { 'src/cache/cache.ts': "import { model } from '../models/model.js';\nexport const cache = model;\n", 'src/models/model.ts': 'export const model = 1;\n' }],
    ['contracts-import-only-contracts', { 'src/contracts/shape.ts': "import { pool } from '../dispatch/pool.js';\nexport const shape = pool;\n", 'src/dispatch/pool.ts': 'export const pool = 1;\n' }],
    ['no-composition-imports', { 'src/tasks/task.ts': "import { app } from '../app.js';\nexport const task = app;\n", 'src/app.ts': 'export const app = 1;\n' }],
    ['no-circular', { 'src/queue/a.ts': "import { b } from './b.js';\nexport const a = () => b;\n", 'src/queue/b.ts': "import { a } from './a.js';\nexport const b = () => a;\n" }],
  ])('refuses a tree that breaks %s', async (rule, files) => {
    const { code, output } = await cruise(files);
    expect(code, output).not.toBe(0);
    expect(output).toContain(rule);
  }, 60_000);

  it('lets the stages import downwards', async () => {
    const { code, output } = await cruise({
      'src/api/route.ts': "import { task } from '../tasks/task.js';\nexport const route = task;\n",
      'src/tasks/task.ts': "import { model } from '../models/model.js';\nexport const task = model;\n",
      'src/models/model.ts': "import { cache } from '../cache/cache.js';\nexport const model = cache;\n",
      'src/cache/cache.ts': "import type { Shape } from '../contracts/shape.js';\nexport const cache: Shape = 1;\n",
      'src/contracts/shape.ts': 'export type Shape = number;\n',
    });
    expect(code, output).toBe(0);
  }, 60_000);
});
