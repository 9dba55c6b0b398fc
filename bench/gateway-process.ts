import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerProcess } from '../test/support/server-process.js';
import { startCommand } from '../test/support/start-command.js';

/**
 * The gateway as `npm start` runs it: package.json's start command (the built dist/, with its Node flags), so
 * the numbers are those of what operators deploy. `npm run bench:dispatch` builds first. With a profile
 * directory, under `node --cpu-prof` (which NODE_OPTIONS may not carry); the profile is written when the
 * process exits normally, so it is always stopped with SIGTERM first. Its URL images go to a directory of its
 * own, removed when it stops: the default one under the system's tmpdir kept every benchmark's images (a run of
 * bench:realistic writes tens of thousands).
 */
export async function startGatewayAsNpmStartDoes(
  env: Record<string, string>,
  options: { profileDir?: string | undefined; outputTailChars: number },
): Promise<ServerProcess & { command: string }> {
  const { profileDir, outputTailChars } = options;
  const root = fileURLToPath(new URL('..', import.meta.url));
  const command = startCommand();
  const nodeArgs = command.slice(1);
  const profiling = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const images = await mkdtemp(join(tmpdir(), 'clipgate-bench-images-'));
  const child = spawn(process.execPath, [...profiling, ...nodeArgs], {
    cwd: root,
    env: { PATH: process.env['PATH'] ?? '', IMAGE_STORE_DIR: images, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Only the tail is kept, for error messages: at LOG_LEVEL=info every request writes a line.
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-outputTailChars);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  // Removed however the process ends: a benchmark that fails must not leave its images either.
  void exited.then(() => rm(images, { recursive: true, force: true }));
  return {
    command: command.join(' '),
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.kill('SIGTERM');
        await exited;
        clearTimeout(killer);
      }
      await rm(images, { recursive: true, force: true });
    },
  };
}

