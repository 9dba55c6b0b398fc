import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const clients = fileURLToPath(new URL('../integration/clients/python/', import.meta.url));

export type PythonClient = 'runware' | 'runware-sdk';

export interface PythonClientRun {
  /** Every JSON line the driver printed, in order. */
  readonly lines: Record<string, unknown>[];
  /** Its last line: what the client's caller got. */
  readonly outcome: Record<string, unknown>;
  readonly stderr: string;
}

/**
 * Runs one of Runware's published Python clients (installed by scripts/install-test-dependencies.sh, each in
 * its own environment) through its driver script in test/integration/clients/python. `onLine` sees each
 * line as it comes, for tests that act mid-run.
 */
export function runPythonClient(
  client: PythonClient,
  spec: Record<string, unknown>,
  options: { timeoutMs?: number; onLine?: (line: Record<string, unknown>) => void } = {},
): Promise<PythonClientRun> {
  const python = `${clients}.venv-${client}/bin/python`;
  const script = `${clients}drive_${client.replace('-', '_')}.py`;
  return new Promise((resolve, reject) => {
    const child = spawn(python, [script], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '', PYTHONUNBUFFERED: '1' } });
    const lines: Record<string, unknown>[] = [];
    let pending = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const part of parts) {
        if (!part.startsWith('{')) continue;
        const line = JSON.parse(part) as Record<string, unknown>;
        lines.push(line);
        options.onLine?.(line);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${python} (./scripts/install-test-dependencies.sh installs it): ${error.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const outcome = lines.at(-1);
      if (!outcome) reject(new Error(`${client} printed no outcome (exit ${code ?? signal}):\n${stderr.slice(-3000)}`));
      else resolve({ lines, outcome, stderr });
    });
    child.stdin.end(JSON.stringify(spec));
  });
}
