import { readTaskResponse } from '../helper.js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kohyaSafetensorsFile, randomVectors, sdxlSafetensorsFile } from '../support/embedding-fixtures.js';
import { startFakeRegistry, type FakeRegistry } from '../support/fake-registry.js';
import { freePort } from '../support/free-port.js';
import { startGateway, until, type TestGateway } from '../support/gateway.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';

/**
 * The whole chain on loopback: gateway + Redis + registry + the reference Python worker in tiny mode. The
 * worker downloads the canonical embedding files from the gateway, injects them into its (tiny, random) CLIP
 * and generates real PNG images.
 */

const workerDirectory = fileURLToPath(new URL('../../worker', import.meta.url));
// scripts/install-test-dependencies.sh makes this environment; CLIPGATE_WORKER_PYTHON may name another.
const python = process.env['CLIPGATE_WORKER_PYTHON'] ?? `${workerDirectory}/.venv/bin/python`;

let registry: FakeRegistry;
let redis: RedisServer;
let traces: OtlpReceiver;
let gateway: TestGateway;
let worker: ChildProcess;
let workerOutput = '';

beforeAll(async () => {
  if (!existsSync(python)) {
    throw new Error(`the worker's Python environment is missing at ${python}: run ./scripts/install-test-dependencies.sh`);
  }
  [registry, redis, traces] = await Promise.all([startFakeRegistry(), startRedisServer(), startOtlpReceiver()]);
  registry.addModelVersion({ modelId: 6001, versionId: 7001, name: 'Style', type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'style.safetensors', bytes: kohyaSafetensorsFile(randomVectors(3, 768, 41), 3, 768) }] });
  registry.addModelVersion({ modelId: 6002, versionId: 7002, name: 'Negative', type: 'TextualInversion', baseModel: 'SD 1.5', trainedWords: ['negtrig'], files: [{ name: 'negative.pt', bytes: kohyaSafetensorsFile(randomVectors(2, 768, 42), 2, 768) }] });
  // A negative embedding published as Civitai does for some: its only file is typed Negative.
  registry.addModelVersion({ modelId: 6004, versionId: 7004, name: 'Bad Hands', type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'bad-hands.safetensors', type: 'Negative', bytes: kohyaSafetensorsFile(randomVectors(3, 768, 43), 3, 768) }] });
  // LoRAs that fit the tiny pipelines, written by the worker's own test helper in both namings.
  for (const [versionId, family, naming, seed, baseModel] of loraVersions) {
    registry.addModelVersion({ modelId: versionId, versionId, name: `LoRA ${versionId}`, type: 'LORA', baseModel, files: [{ name: `lora-${versionId}.safetensors`, bytes: tinyLora(family, naming, seed) }] });
  }

  const [gatewayPort, workerPort] = [await freePort(), await freePort()];
  worker = spawn(python, ['-m', 'clipgate_worker'], {
    cwd: workerDirectory,
    env: {
      ...process.env,
      WORKER_TINY: '1',
      WORKER_PORT: String(workerPort),
      WORKER_HOST: '127.0.0.1',
      WORKER_DEVICE: 'cpu',
      PYTHONUNBUFFERED: '1',
      WORKER_LORA_CACHE_DIR: mkdtempSync(join(tmpdir(), 'clipgate-worker-loras-')),
      // The worker's own registry credentials, for the registry's host only (never in a job).
      WORKER_REGISTRY_TOKEN: 'worker-registry-token',
      WORKER_REGISTRY_HOSTS: new URL(registry.url).host,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  worker.stdout?.on('data', (chunk: Buffer) => (workerOutput += chunk.toString()));
  worker.stderr?.on('data', (chunk: Buffer) => (workerOutput += chunk.toString()));

  gateway = await startGateway({
    REDIS_URL: redis.url,
    CIVITAI_BASE_URL: registry.url,
    WORKER_URLS: `http://127.0.0.1:${workerPort}`,
    WORKER_HEALTH_INTERVAL_MS: '200',
    PUBLIC_BASE_URL: `http://127.0.0.1:${gatewayPort}`,
    TASK_TIMEOUT_MS: '120000',
    TASK_FIRST_BYTE_TIMEOUT_MS: '60000',
    // Traced, so that the worker gets each job's trace context (src/tracing.ts).
    OTEL_EXPORTER_OTLP_ENDPOINT: traces.url,
  });
  await gateway.app.listen({ port: gatewayPort, host: '127.0.0.1' });
  await until(() => gateway.dispatch.pool?.workers[0]?.healthy === true, 90_000).catch((error: unknown) => {
    throw new Error(`the worker did not become ready: ${String(error)}\n${workerOutput.slice(-3000)}`);
  });
}, 120_000);

afterAll(async () => {
  worker?.kill('SIGKILL');
  await gateway?.close();
  await Promise.all([registry?.close(), redis?.stop(), traces?.close()]);
});

/** [versionId, family, naming, seed, Civitai baseModel] */
const loraVersions: [number, 'sd1' | 'sdxl', 'kohya' | 'peft', number, string][] = [
  [8101, 'sd1', 'kohya', 11, 'SD 1.5'],
  [8102, 'sd1', 'peft', 12, 'SD 1.5'],
];

/** A LoRA file for the tiny pipelines, built by worker/tests/tiny_loras.py in the worker's environment. */
function tinyLora(family: string, naming: string, seed: number): Uint8Array {
  const directory = mkdtempSync(join(tmpdir(), 'clipgate-tiny-lora-'));
  const script = `import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from tiny_loras import write_lora; from clipgate_worker.tiny_pipelines import build_tiny_pipeline; print(write_lora(Path(sys.argv[1]), build_tiny_pipeline('${family}'), '${family}', ${seed}, '${naming}')[0])`;
  const path = execFileSync(python, ['-c', script, directory], { cwd: workerDirectory, encoding: 'utf8' }).trim().split('\n').at(-1) ?? '';
  return new Uint8Array(readFileSync(path));
}

function pngSize(bytes: Buffer): { width: number; height: number } {
  expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  expect(bytes.subarray(12, 16).toString('latin1')).toBe('IHDR');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

describe('gateway and the reference worker', () => {
  it('turns a task with two embeddings, one negative, into real PNG images', async () => {
    const task = {
      taskType: 'imageInference',
      taskUUID: randomUUID(),
      positivePrompt: 'a lighthouse on a cliff at dusk',
      negativePrompt: 'blurry',
      model: 'civitai:4384@128713',
      width: 128,
      height: 128,
      steps: 2,
      numberResults: 2,
      outputType: 'base64Data',
      outputFormat: 'PNG',
      embeddings: [
        { model: 'civitai:6001@7001', weight: 0.8 },
        { model: 'civitai:6002@7002', weight: -1.2 },
      ],
    };
    const payload = JSON.stringify([task]).replace('"width"', '"seed":18446744073709551615,"width"');
    const response = await gateway.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload });
    expect(response.statusCode, `${response.body}\n${workerOutput.slice(-3000)}`).toBe(200);
    const body = readTaskResponse(response.body);
    expect(body.errors).toEqual([]);
    expect(body.data.map((image) => image.seed)).toEqual([18446744073709551615n, 0]);
    for (const image of body.data) {
      expect(image.taskUUID).toBe(task.taskUUID);
      expect(pngSize(Buffer.from(String(image.imageBase64Data), 'base64'))).toEqual({ width: 128, height: 128 });
    }
  });

  it("logs each job with the trace id of the gateway's traceparent, continuing a client's trace", async () => {
    const traceId = randomUUID().replaceAll('-', '');
    const task = { taskType: 'imageInference', taskUUID: randomUUID(), positivePrompt: 'a red barn', model: 'civitai:4384@128713', width: 128, height: 128, steps: 2, outputType: 'base64Data', outputFormat: 'PNG' };
    const response = await gateway.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-b7ad6b7169203331-01` }, payload: JSON.stringify([task]) });
    expect(response.statusCode, response.body).toBe(200);
    await until(() => workerOutput.includes(`job ${task.taskUUID}.1 [trace ${traceId}] done`), 5000).catch(() => {
      throw new Error(`no log line of the job with its trace id:\n${workerOutput.slice(-3000)}`);
    });
    expect(workerOutput).toContain(`job ${task.taskUUID}.1 [trace ${traceId}] accepted`);
  });

  it('gives the same image for the same seed, and refuses an SDXL embedding on the SD 1.5 model before the worker', async () => {
    const task = (seed: number) => ({
      taskType: 'imageInference',
      taskUUID: randomUUID(),
      positivePrompt: 'a red barn',
      model: 'civitai:4384@128713',
      width: 128,
      height: 128,
      steps: 2,
      seed,
      outputType: 'base64Data',
      outputFormat: 'PNG',
      embeddings: [{ model: 'civitai:6001@7001', weight: 1 }],
    });
    const [first, second] = await Promise.all([7, 7].map((seed) => gateway.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: JSON.stringify([task(seed)]) })));
    const images = [first, second].map((response) => (response ? readTaskResponse(response.body).data[0]?.imageBase64Data : undefined));
    expect(images[0]).toBeDefined();
    expect(images[0]).toBe(images[1]);

    registry.addModelVersion({ modelId: 6003, versionId: 7003, type: 'TextualInversion', baseModel: 'SDXL 1.0', files: [{ name: 'xl.safetensors', bytes: sdxlSafetensorsFile(randomVectors(1, 768, 43), randomVectors(1, 1280, 44), 1) }] });
    const refused = await gateway.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: JSON.stringify([{ ...task(1), embeddings: [{ model: 'civitai:6003@7003' }] }]) });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().errors[0].code).toBe('incompatibleEmbeddingFamily');
  });

  it('takes outputQuality to the worker, which advertises it, and refuses checkNSFW, which it does not', async () => {
    const jpeg = (outputQuality: number) => ({
      taskType: 'imageInference',
      taskUUID: randomUUID(),
      positivePrompt: 'a red barn',
      model: 'civitai:4384@128713',
      width: 256,
      height: 256,
      steps: 2,
      seed: 3,
      outputType: 'base64Data',
      outputFormat: 'JPG',
      outputQuality,
    });
    const sizes: number[] = [];
    for (const quality of [20, 99]) {
      const response = await gateway.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: JSON.stringify([jpeg(quality)]) });
      expect(response.statusCode, response.body).toBe(200);
      const bytes = Buffer.from(String(readTaskResponse(response.body).data[0]?.imageBase64Data), 'base64');
      expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
      sizes.push(bytes.length);
    }
    expect(sizes[0]).toBeLessThan(sizes[1]!);

    const nsfw = await gateway.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: JSON.stringify([{ ...jpeg(95), checkNSFW: true }]) });
    expect(nsfw.statusCode).toBe(503);
    expect(readTaskResponse(nsfw.body).errors[0]).toMatchObject({ code: 'noAvailableWorker', parameter: 'checkNSFW', retryable: true });
  });

  it('reads prompt weighting and puts an embedding where its trigger word stands: each changes the image, each exactly again', async () => {
    const image = async (overrides: Record<string, unknown>) => {
      const task = { taskType: 'imageInference', taskUUID: randomUUID(), model: 'civitai:4384@128713', width: 128, height: 128, steps: 2, seed: 5, outputType: 'base64Data', outputFormat: 'PNG', positivePrompt: 'a (red:1.4) barn', negativePrompt: 'blurry', embeddings: [{ model: 'civitai:6002@7002', weight: -1 }], ...overrides };
      const response = await gateway.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: JSON.stringify([task]) });
      expect(response.statusCode, response.body).toBe(200);
      return String(readTaskResponse(response.body).data[0]?.imageBase64Data);
    };
    const literal = await image({});
    const weighted = await image({ promptWeighting: 'sdEmbeds' });
    const compel = await image({ promptWeighting: 'compel', positivePrompt: 'a (red)1.4 barn' });
    const inPlace = await image({ negativePrompt: 'negtrig, blurry' });
    expect(new Set([literal, weighted, compel, inPlace]).size).toBe(4);
    expect(await image({ promptWeighting: 'sdEmbeds' })).toBe(weighted);
    expect(await image({ negativePrompt: 'negtrig, blurry' })).toBe(inPlace);
  });

  it('applies a LoRA beside a negative embedding whose file is typed Negative; weight 0 is the image without it; no LoRA outlives its job', async () => {
    const image = async (lora: unknown[] | undefined, model = 'civitai:4384@128713') => {
      const task = { taskType: 'imageInference', taskUUID: randomUUID(), model, width: 128, height: 128, steps: 2, seed: 9, outputType: 'base64Data', outputFormat: 'PNG', positivePrompt: 'a red barn', negativePrompt: 'blurry', embeddings: [{ model: 'civitai:6004@7004', weight: -1 }], ...(lora && { lora }) };
      const response = await gateway.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: JSON.stringify([task]) });
      return { status: response.statusCode, body: readTaskResponse(response.body) };
    };
    const dataOf = async (lora?: unknown[]) => {
      const { status, body } = await image(lora);
      expect(status, JSON.stringify(body)).toBe(200);
      return String(body.data[0]?.imageBase64Data);
    };
    const second = await dataOf([{ model: 'civitai:8102@8102', weight: 1 }]);
    const without = await dataOf();
    const withLora = await dataOf([{ model: 'civitai:8101@8101', weight: 1 }]);
    expect(withLora).not.toBe(without);
    expect(await dataOf([{ model: 'civitai:8101@8101', weight: 0 }])).toBe(without);
    // After the kohya LoRA's job: the PEFT one's image is what it was before, and so is the image without any.
    expect(await dataOf([{ model: 'civitai:8102@8102', weight: 1 }])).toBe(second);
    expect(await dataOf()).toBe(without);
    expect(second).not.toBe(withLora);

    // The worker fetched each LoRA from the registry with its own token, and the storage redirect got none.
    const downloads = registry.requests.filter((entry) => entry.url.includes('/lora-81'));
    expect(downloads.filter((entry) => entry.origin === 'registry').every((entry) => entry.authorization === 'Bearer worker-registry-token' || entry.authorization === undefined)).toBe(true);
    expect(downloads.some((entry) => entry.origin === 'registry' && entry.authorization === 'Bearer worker-registry-token')).toBe(true);
    expect(downloads.filter((entry) => entry.origin === 'storage').every((entry) => entry.authorization === undefined)).toBe(true);
    expect(registry.calls.downloads('/models/8101/lora-8101.safetensors')).toBe(1);

    const mismatch = await image([{ model: 'civitai:8101@8101', weight: 1 }], 'civitai:101055@128078');
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.errors.map((error: { code: string }) => error.code)).toContain('incompatibleLoraFamily');
  });

  it('draws tasks of one batch key that queue behind a running job in one UNet pass, each with its own prompt, embedding and seed', async () => {
    expect(gateway.dispatch.pool?.workers[0]?.health?.batchSize).toBe(4);
    const task = (overrides: Record<string, unknown>) => ({
      taskType: 'imageInference',
      taskUUID: randomUUID(),
      positivePrompt: 'a lighthouse',
      model: 'civitai:4384@128713',
      width: 128,
      height: 128,
      steps: 2,
      outputType: 'base64Data',
      outputFormat: 'PNG',
      ...overrides,
    });
    const send = async (body: Record<string, unknown>) => {
      const response = await gateway.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: JSON.stringify([body]) });
      expect(response.statusCode, `${response.body}\n${workerOutput.slice(-2000)}`).toBe(200);
      return readTaskResponse(response.body);
    };
    // A longer job of another key holds the device, so the four below wait in the worker's queue together.
    const blocker = send(task({ steps: 100, width: 256, height: 256 }));
    await until(() => (gateway.dispatch.pool?.workers[0]?.inFlight ?? 0) >= 1, 10_000);
    const batched = [
      task({ seed: 11 }),
      task({ seed: 12, positivePrompt: 'a red fox in the snow' }),
      task({ seed: 13, embeddings: [{ model: 'civitai:6001@7001', weight: 0.8 }] }),
      task({ seed: 14, negativePrompt: 'blurry', clipSkip: 2 }),
    ];
    const [, ...answers] = await Promise.all([blocker, ...batched.map(send)]);
    const ids = batched.map((sent) => `${sent.taskUUID}.1`);
    const batchLine = workerOutput.split('\n').find((line) => line.includes('batch of 4 jobs') && ids.every((id) => line.includes(id)));
    expect(batchLine, workerOutput.slice(-3000)).toBeDefined();
    expect(answers.map((answer) => answer.data[0]?.seed)).toEqual([11, 12, 13, 14]);
    const images = answers.map((answer) => String(answer.data[0]?.imageBase64Data));
    expect(new Set(images).size).toBe(4);
  });
});
