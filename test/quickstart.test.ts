import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kohyaSafetensorsFile, randomVectors } from './support/embedding-fixtures.js';
import { startFakeRegistry, type FakeRegistry } from './support/fake-registry.js';
import { freePort } from './support/free-port.js';
import { until } from './support/gateway.js';
import { waitUntilReady } from './support/server-process.js';

/**
 * The README's run command as a new user runs it — `npm run quickstart`, the reference worker in tiny mode and
 * the gateway in front of it — then the README's first curl, word for word but for the port: a task with an
 * embedding answers with an image. The registry is a loopback one that serves an SD 1.5 embedding under
 * EasyNegative's AIR (these machines cannot reach Civitai); everything else is what the user gets.
 */
const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
let registry: FakeRegistry;
let quickstart: ChildProcess;
let output = '';
let gatewayPort: number;
let workerPort: number;

beforeAll(async () => {
  registry = await startFakeRegistry();
  registry.addModelVersion({ modelId: 7808, versionId: 9208, name: 'EasyNegative', type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'easynegative.safetensors', bytes: kohyaSafetensorsFile(randomVectors(8, 768, 1), 8, 768) }] });
  [gatewayPort, workerPort] = [await freePort(), await freePort()];
  const runCommand = /## Run it\n[\s\S]*?```bash\n([^\n]+)\n```/.exec(readme)?.[1];
  expect(runCommand).toBe('npm ci && npm run quickstart');
  // `npm ci` has run already (it is how this test got here); the second half is the quickstart itself.
  quickstart = spawn('npm', ['run', 'quickstart'], {
    cwd: root,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', PORT: String(gatewayPort), WORKER_PORT: String(workerPort), CIVITAI_BASE_URL: registry.url, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  quickstart.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  quickstart.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitUntilReady(gatewayPort, 150_000).catch((error: unknown) => {
    throw new Error(`the quickstart did not come up: ${String(error)}\n${output.slice(-3000)}`);
  });
}, 180_000);

afterAll(async () => {
  if (quickstart && quickstart.exitCode === null && quickstart.signalCode === null) {
    const exited = new Promise((resolve) => quickstart.once('exit', resolve));
    process.kill(-quickstart.pid!, 'SIGKILL');
    await exited;
  }
  await registry?.close();
});

function curl(command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', command], { timeout: 60_000 }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)));
  });
}

describe('the quickstart (README: Run it)', () => {
  it('answers the README\'s first example, an SD 1.5 task with an embedding, with an image', async () => {
    const example = /```bash\n(curl -s http:\/\/localhost:8080\/v1\/tasks[^`]*?)```\n<!-- expect: 200 image -->/.exec(readme)?.[1];
    expect(example).toBeDefined();
    const text = await curl(example!.replaceAll('localhost:8080', `127.0.0.1:${gatewayPort}`));
    const answer = JSON.parse(text) as { data: { imageURL: string; taskUUID: string; seed: number }[] };
    expect(answer.data).toHaveLength(1);
    expect(answer.data[0]).toMatchObject({ taskType: 'imageInference', taskUUID: '6ec29a08-5dc2-4bd5-9d7a-3f3c4f0e8a11', imageURL: expect.stringMatching(/\/v1\/images\/[0-9a-f-]{36}\.jpg$/) });
    // The README shows the answer's shape, fields in the order they come.
    // (The seed, 2^64 − 1, as the raw text has it: JSON.parse would round it.)
    const shown = text.trim().replace(/"imageUUID":"[0-9a-f-]{36}"/, '"imageUUID":"…"').replace(/"imageURL":"[^"]+"/, '"imageURL":"http://127.0.0.1:8080/v1/images/….jpg"');
    expect(readme).toContain(shown);
    const image = await fetch(answer.data[0]!.imageURL.replace(':8080', `:${gatewayPort}`));
    expect(image.status).toBe(200);
    const bytes = new Uint8Array(await image.arrayBuffer());
    // A JPEG, 512×768 as asked, drawn by the tiny worker (noise, as the README says).
    expect([...bytes.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
    expect(registry.calls.downloads()).toBe(1);
  }, 120_000);

  it('stops the worker and the gateway together on Ctrl-C', async () => {
    const exited = new Promise((resolve) => quickstart.once('exit', resolve));
    // What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
    process.kill(-quickstart.pid!, 'SIGINT');
    await exited;
    const closed = async (url: string) => fetch(url).then(() => false, () => true);
    await until(async () => (await closed(`http://127.0.0.1:${workerPort}/v1/health`)) && (await closed(`http://127.0.0.1:${gatewayPort}/health/live`)), 30_000);
    expect(output).not.toMatch(/exited before it was ready/);
  }, 60_000);
});
