import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** docker/compose.yaml as docker-compose itself reads it (Debian's; `config` needs no Docker engine). */
const root = fileURLToPath(new URL('../..', import.meta.url));

function compose(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('docker-compose', ['-f', 'docker/compose.yaml', ...args], { cwd: root, timeout: 60_000 }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }));
  });
}

describe('docker/compose.yaml', () => {
  it('is valid, with nginx in front of two replicas, Redis, the tiny worker, Prometheus and Grafana by default', async () => {
    const { code, stdout, stderr } = await compose(['config', '--services']);
    expect(code, stderr).toBe(0);
    // docker-compose 1.29 lists services of every profile here; the GPU worker is the one in a profile.
    expect(stdout.trim().split('\n').sort()).toEqual(['gateway-1', 'gateway-2', 'grafana', 'nginx', 'prometheus', 'redis', 'worker', 'worker-gpu']);
  });

  it('keeps the GPU worker behind --profile gpu, and is valid with it', async () => {
    const { code, stdout, stderr } = await compose(['config']);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/ {2}worker-gpu:[\s\S]*?profiles:\n\s*- gpu/);
    expect((await compose(['--profile', 'gpu', 'config', '-q'])).code).toBe(0);
  });
});
