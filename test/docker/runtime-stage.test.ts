import { execFile, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/free-port.js';
import { waitUntilReady } from '../support/server-process.js';
import { startCommand } from '../support/start-command.js';

/**
 * There is no Docker engine here to build the images. So: hadolint checks both Dockerfiles, and the gateway's
 * runtime stage is assembled by hand from what the Dockerfile itself says — the files its COPY lines copy into
 * an empty directory, the `npm ci` its RUN line runs, dist/ as the build stage makes it — and started there
 * with the image's CMD: if the runtime stage misses a file or a production dependency, the gateway does not
 * come up and this fails.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const directories: string[] = [];
afterAll(() => {
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
});

function run(command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, [...args], { cwd, env, maxBuffer: 16 * 1024 * 1024, timeout: 240_000 }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` }));
  });
}

/** The runtime stage's instructions, joined across line continuations. */
function runtimeStage(): string[] {
  const stage = dockerfile.split(/^FROM .* AS runtime$/m)[1];
  if (stage === undefined) throw new Error('the Dockerfile has no stage named runtime');
  return stage
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

describe('the Docker images', () => {
  it('pass hadolint', async () => {
    const { code, output } = await run(join(root, 'test/docker/.venv/bin/hadolint'), ['Dockerfile', 'worker/Dockerfile'], root);
    expect(output).toBe('');
    expect(code).toBe(0);
  });

  it('have a runtime stage that runs the gateway from what it copies and installs alone', async () => {
    const instructions = runtimeStage();
    const directory = mkdtempSync(join(tmpdir(), 'clipgate-runtime-stage-'));
    directories.push(directory);
    const build = mkdtempSync(join(tmpdir(), 'clipgate-build-stage-'));
    directories.push(build);
    // The build stage's output: dist/ compiled from src/ as `npm run build` compiles it.
    const compiled = await run(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json', '--outDir', join(build, 'dist')], root);
    expect(compiled.code, compiled.output).toBe(0);

    let cmd: string[] | undefined;
    for (const instruction of instructions) {
      const [keyword, ...rest] = instruction.split(/\s+/);
      const args = rest.join(' ');
      if (keyword === 'COPY') {
        const parts = rest.filter((part) => !part.startsWith('--'));
        const target = parts.pop()!;
        const from = rest.find((part) => part.startsWith('--from=')) ? build : root;
        for (const source of parts) cpSync(join(from, source.replace(/^\/app\//, '')), join(directory, target === './' ? source : target), { recursive: true });
      } else if (keyword === 'RUN') {
        // Only its npm commands: the rest (an image directory, its owner) belongs to the image's file system.
        for (const step of args.split('&&').map((part) => part.trim()).filter((part) => part.startsWith('npm '))) {
          const installed = await run('sh', ['-c', step], directory, { ...process.env, npm_config_prefer_offline: 'true' });
          expect(installed.code, installed.output).toBe(0);
        }
      } else if (keyword === 'CMD') {
        cmd = JSON.parse(args) as string[];
      }
    }
    // The image starts the gateway as `npm start` does: the same node flags (the young generation's size, issue 15).
    expect(cmd).toEqual(startCommand());
    expect(cmd).toContain('--max-semi-space-size=64');
    // Nothing but production dependencies: the test toolchain is not there.
    expect(() => readFileSync(join(directory, 'node_modules/vitest/package.json'))).toThrow();
    expect(() => readFileSync(join(directory, 'node_modules/fastify/package.json'))).not.toThrow();

    const port = await freePort();
    const gateway = spawn(cmd![0] === 'node' ? process.execPath : cmd![0]!, cmd!.slice(1), {
      cwd: directory,
      env: { PATH: process.env['PATH'] ?? '', NODE_ENV: 'production', API_KEYS: 'docker-stage-key-0123456789', PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', CIVITAI_BASE_URL: 'off', IMAGE_STORE_DIR: join(directory, 'images') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    gateway.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    gateway.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      await waitUntilReady(port).catch((error: unknown) => {
        throw new Error(`${String(error)}\n${output}`);
      });
      const response = await request(`http://127.0.0.1:${port}/v1/tasks`, {
        method: 'POST',
        headers: { authorization: 'Bearer docker-stage-key-0123456789', 'content-type': 'application/json' },
        body: JSON.stringify([{ taskType: 'imageInference', taskUUID: crypto.randomUUID(), model: 'civitai:4384@128713', positivePrompt: 'a lighthouse', width: 512, height: 512 }]),
      });
      const body = (await response.body.json()) as { errors: { code: string }[] };
      expect(response.statusCode).toBe(503);
      expect(body.errors[0]?.code).toBe('noAvailableWorker');
    } finally {
      const exited = new Promise((resolve) => gateway.once('exit', resolve));
      // SIGTERM, as `docker stop` sends it to PID 1: the gateway drains and exits by itself.
      gateway.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  }, 300_000);
});
