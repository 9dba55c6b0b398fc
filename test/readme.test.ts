import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { errorCatalogue, warningCatalogue } from '../src/errors.js';
import type { FastifyInstance } from 'fastify';
import { kohyaSafetensorsFile, randomVectors } from './support/embedding-fixtures.js';
import { startFakeRegistry } from './support/fake-registry.js';
import { startGateway } from './support/gateway.js';
import { CLIENT_API_KEY, startClientStack } from './support/client-stack.js';
import { fieldsNotApplied, unsupportedFeatures } from '../src/tasks/image-inference/runware-fields.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

function tableAfter(heading: string): string[][] {
  const section = readme.split(`## ${heading}`)[1]?.split('\n## ')[0] ?? '';
  return section
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()));
}

describe('README', () => {
  it('lists exactly the error catalogue, with status and retryability', () => {
    const rows = tableAfter('Error codes').map(([code, status, retryable, description]) => [code, status, retryable, description]);
    const expected = Object.entries(errorCatalogue).map(([code, definition]) => [
      `\`${code}\``,
      String(definition.status),
      definition.retryable ? 'yes' : 'no',
      definition.description,
    ]);
    expect(rows).toEqual(expected);
  });

  it('lists exactly the warning catalogue', () => {
    const rows = tableAfter('Warning codes');
    expect(rows).toEqual(Object.entries(warningCatalogue).map(([code, definition]) => [`\`${code}\``, definition.description]));
  });

  it('documents every configuration variable', () => {
    const documented = tableAfter('Configuration').map(([variable]) => variable?.replaceAll('`', ''));
    const source = readFileSync(new URL('../src/config.ts', import.meta.url), 'utf8');
    const read = [...source.matchAll(/^ {2}([A-Z_]+): /gm)].map((match) => match[1]);
    expect(documented.sort()).toEqual(read.sort());
  });

  it('shows curl examples that answer as the README says', async () => {
    // An example's payload never holds a backtick: a match cannot run on into the next code block.
    const examples = [...readme.matchAll(/-d '(\[[^`]*?\])'\n```\n<!-- expect: (\d{3}) (\w+) -->/g)];
    expect(examples.length).toBeGreaterThanOrEqual(2);
    // The README's examples run on the embedded defaults (no API keys, no Redis) against a registry that
    // serves EasyNegative as Civitai does: an SD 1.5 safetensors embedding.
    const registry = await startFakeRegistry();
    registry.addModelVersion({ modelId: 7808, versionId: 9208, name: 'EasyNegative', type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'easynegative.safetensors', bytes: kohyaSafetensorsFile(randomVectors(8, 768, 1), 8, 768) }] });
    const gateway = await startGateway({ CIVITAI_BASE_URL: registry.url });
    const app = gateway.app;
    try {
      await checkExamples(app, examples);
    } finally {
      await gateway.close();
      await registry.close();
    }
  });
});

async function checkExamples(app: FastifyInstance, examples: RegExpExecArray[]): Promise<void> {
  for (const [, payload, status, code] of examples) {
    const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload });
    if (status === '200') {
      // The image comes from the quickstart's tiny worker (test/quickstart.test.ts); without workers, as the
      // README says after it, the same valid task is answered noAvailableWorker.
      expect(response.statusCode, payload).toBe(503);
      expect(response.json().errors[0].code).toBe('noAvailableWorker');
      expect(readme).toContain('Without workers (`npm start`), the same task is valid still, and answered with a retryable `noAvailableWorker`');
      continue;
    }
    expect(response.statusCode, payload).toBe(Number(status));
    expect(response.json().errors[0].code).toBe(code);
    expect(readme).toContain(response.body);
  }
}

describe('README: Runware SDK snippets', () => {
  const snippets = [...readme.matchAll(/<!-- client: ([\w-]+) -->\n```(js|python)\n([\s\S]*?)```/g)].map(([, client, language, code]) => ({ client: client!, language: language!, code: code! }));

  it('shows one snippet for each of the four clients, and names the fields it refuses exactly as the code does', () => {
    expect(snippets.map((snippet) => snippet.client)).toEqual(['sdk-js', 'ai-sdk-provider', 'runware', 'runware-sdk']);
    const row = (answer: string) => tableRow(`| ${answer} |`).split(', ').map((field) => field.replaceAll('`', ''));
    expect(row('refused, `unsupportedFeature`')).toEqual(Object.keys(unsupportedFeatures));
    expect(row('taken, `parameterNotApplied` warning')).toEqual(Object.keys(fieldsNotApplied));
  });

  it('runs each snippet word for word against a gateway (its host, port and key put in)', async () => {
    const stack = await startClientStack();
    const port = stack.gateways[0]!.port;
    try {
      for (const { client, language, code } of snippets) {
        const concrete = code.replaceAll('ws://localhost:8080', `ws://127.0.0.1:${port}`).replaceAll('http://localhost:8080', `http://127.0.0.1:${port}`).replaceAll('YOUR_API_KEY', CLIENT_API_KEY);
        const output = language === 'js' ? await runJavaScript(client, concrete) : await runPython(client === 'runware' ? 'runware' : 'runware-sdk', concrete);
        const expected = client === 'ai-sdk-provider' ? /^image\/png \d+$/m : new RegExp(`^http://127\\.0\\.0\\.1:${port}/v1/images/[0-9a-f-]{36}\\.jpg \\d+$`, 'm');
        expect(output, client).toMatch(expected);
      }
    } finally {
      await stack.close();
    }
  }, 120_000);
});

function tableRow(start: string): string {
  const line = readme.split('\n').find((candidate) => candidate.trim().startsWith(start));
  return line?.trim().slice(start.length).split(' |')[0]?.trim() ?? '';
}

const clientsDirectory = fileURLToPath(new URL('./integration/clients/', import.meta.url));

/** Runs a module beside the tests, so that it imports the clients installed in node_modules. */
async function runJavaScript(name: string, code: string): Promise<string> {
  const file = join(clientsDirectory, `.readme-${name}.mjs`);
  writeFileSync(file, code);
  try {
    return await run(process.execPath, [file]);
  } finally {
    rmSync(file, { force: true });
  }
}

async function runPython(environment: 'runware' | 'runware-sdk', code: string): Promise<string> {
  return run(join(clientsDirectory, 'python', `.venv-${environment}`, 'bin', 'python'), ['-c', code]);
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 60_000, env: { PATH: process.env['PATH'] ?? '' } }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args[0]} failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

describe('README: async delivery', () => {
  const block = (marker: string, language: string) => {
    const match = new RegExp(`<!-- ${marker} -->\\n\`\`\`${language}\\n([\\s\\S]*?)\`\`\``).exec(readme);
    if (!match?.[1]) throw new Error(`no ${marker} block in the README`);
    return match[1];
  };
  const secret = 'whsec-readme-0123456789abcdef0123456789';

  it('runs the curl flow word for word: acknowledged, streamed to done, then found with its image', async () => {
    const stack = await startClientStack({ env: { WEBHOOK_SIGNING_SECRET: secret, WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' } });
    const port = stack.gateways[0]!.port;
    try {
      const script = block('async-flow', 'bash').replaceAll('http://localhost:8080', `http://127.0.0.1:${port}`).replaceAll('YOUR_API_KEY', CLIENT_API_KEY);
      const output = await run('bash', ['-c', script]);
      expect(output).toMatch(/^\{"data":\[\{"taskType":"imageInference","taskUUID":"[0-9a-f-]{36}"\}\]\}/);
      expect(output).toMatch(/event: queued\n/);
      expect(output).toMatch(/event: result\ndata: \{"taskType":"imageInference"/);
      expect(output).toMatch(/event: done\ndata: \{"taskUUID":"[0-9a-f-]{36}","state":"success"\}/);
      expect(output).toMatch(/\{"data":\[\{"taskType":"imageInference",[^\n]*"status":"success"\}\]\}\s*$/);
    } finally {
      await stack.close();
    }
  }, 60_000);

  it('runs the webhook receiver word for word: it verifies what clipgate sends', async () => {
    const { freePort } = await import('./support/free-port.js');
    const receiverPort = await freePort();
    const stack = await startClientStack({ env: { WEBHOOK_SIGNING_SECRET: secret, WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' } });
    const file = join(clientsDirectory, '.readme-webhook-receiver.mjs');
    writeFileSync(file, block('webhook-receiver', 'js').replace('.listen(8081)', `.listen(${receiverPort}, '127.0.0.1')`));
    const { spawn } = await import('node:child_process');
    const receiver = spawn(process.execPath, [file], { env: { PATH: process.env['PATH'] ?? '', WEBHOOK_SIGNING_SECRET: secret }, stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    receiver.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const taskUUID = crypto.randomUUID();
      const response = await fetch(`http://127.0.0.1:${stack.gateways[0]!.port}/v1/tasks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify([{ taskType: 'imageInference', taskUUID, deliveryMethod: 'async', model: 'civitai:4384@128713', positivePrompt: 'a lighthouse', width: 512, height: 512, numberResults: 2, webhookURL: `http://127.0.0.1:${receiverPort}/hook` }]),
      });
      expect(response.status).toBe(200);
      const deadline = Date.now() + 20_000;
      while ((output.match(/verified/g) ?? []).length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      const lines = output.trim().split('\n');
      expect(lines).toHaveLength(2);
      for (const line of lines) expect(line).toMatch(new RegExp(`^verified ${taskUUID}\\.[0-9a-f-]{36}$`));
      expect(output).not.toContain('REFUSED');
    } finally {
      receiver.kill();
      rmSync(file, { force: true });
      await stack.close();
    }
  }, 60_000);
});
