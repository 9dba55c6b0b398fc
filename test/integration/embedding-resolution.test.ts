import { readTaskResponse } from '../helper.js';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { inspectEmbeddingFile } from '../../src/embeddings/inspect-embedding.js';
import {
  a1111PtFile,
  diffusersBinFile,
  kohyaSafetensorsFile,
  lyingSafetensorsHeader,
  maliciousPickleFile,
  randomVectors,
  sdxlSafetensorsFile,
  truncatedSafetensors,
  zipBombFile,
} from '../support/embedding-fixtures.js';
import { startFakeRegistry, type FakeRegistry } from '../support/fake-registry.js';
import { startGateway, until, type TestGateway } from '../support/gateway.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';

let registry: FakeRegistry;
let redis: RedisServer;
const gateways: TestGateway[] = [];
let versionCounter = 50_000;

beforeAll(async () => {
  [registry, redis] = await Promise.all([startFakeRegistry(), startRedisServer()]);
});

afterEach(async () => {
  registry.setBehaviour({ latencyMs: 0, failNext: 0, hang: false });
  await Promise.all(gateways.splice(0).map((gateway) => gateway.close()));
});

afterAll(async () => {
  await registry.close();
  await redis.stop();
});

async function gateway(extra: Record<string, string> = {}): Promise<TestGateway> {
  const started = await startGateway({ REDIS_URL: redis.url, CIVITAI_BASE_URL: registry.url, CIVITAI_TOKEN: 'registry-token', REGISTRY_TIMEOUT_MS: '2000', ...extra });
  gateways.push(started);
  await until(() => started.resolution.redis?.isUp() === true);
  return started;
}

/** Publishes an embedding on the fake registry and returns its AIR. */
function publish(file: Uint8Array, options: { name?: string; baseModel?: string; type?: string; scan?: string; sha256?: string } = {}): string {
  const versionId = ++versionCounter;
  const modelId = versionId + 1_000_000;
  registry.addModelVersion({
    modelId,
    versionId,
    type: options.type ?? 'TextualInversion',
    baseModel: options.baseModel ?? 'SD 1.5',
    trainedWords: ['fixture'],
    files: [
      {
        name: options.name ?? 'embedding.safetensors',
        bytes: file,
        ...(options.scan !== undefined && { pickleScanResult: options.scan }),
        ...(options.sha256 !== undefined && { sha256: options.sha256 }),
      },
    ],
  });
  return `civitai:${modelId}@${versionId}`;
}

function task(embeddings: { model: string; weight?: number }[], model = 'civitai:4384@128713') {
  return { taskType: 'imageInference', taskUUID: randomUUID(), positivePrompt: 'a lighthouse', model, width: 512, height: 512, embeddings };
}

async function post(app: TestGateway['app'], tasks: unknown[]) {
  const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(tasks) });
  return { status: response.statusCode, body: readTaskResponse(response.body) };
}

async function lookUp(app: TestGateway['app'], air: string) {
  const response = await app.inject({ method: 'GET', url: `/v1/models/${air}` });
  return { status: response.statusCode, body: response.json<Record<string, unknown> & { errors?: { code: string }[] }>() };
}

describe('embeddings resolved through the registry', () => {
  it.each([
    ['kohya safetensors (SD 1.5)', () => kohyaSafetensorsFile(randomVectors(4, 768, 1), 4, 768), 'sd1', 4, 'safetensors'],
    ['SDXL safetensors', () => sdxlSafetensorsFile(randomVectors(2, 768, 2), randomVectors(2, 1280, 3), 2), 'sdxl', 2, 'safetensors'],
    ['A1111 .pt', () => a1111PtFile(randomVectors(8, 768, 4), 8, 768), 'sd1', 8, 'a1111-pt'],
    ['diffusers .bin', () => diffusersBinFile('<cat-toy>', randomVectors(1, 768, 5), 1, 768), 'sd1', 1, 'diffusers-bin'],
    ['SD 2 safetensors', () => kohyaSafetensorsFile(randomVectors(3, 1024, 6), 3, 1024), 'sd2', 3, 'safetensors'],
  ])('reads a %s and serves its canonical copy', async (_name, makeFile, family, vectors, format) => {
    const { app } = await gateway();
    const file = makeFile();
    const air = publish(file, { name: format === 'a1111-pt' ? 'emb.pt' : format === 'diffusers-bin' ? 'learned_embeds.bin' : 'emb.safetensors' });
    const { status, body } = await lookUp(app, air);
    expect(status).toBe(200);
    expect(body).toMatchObject({ air, type: 'textualInversion', family, source: 'registry', trainedWords: ['fixture'], file: { vectors, format, sizeBytes: file.length } });

    const canonical = body['file'] as { canonicalUrl: string; canonicalSha256: string };
    const download = await app.inject({ method: 'GET', url: new URL(canonical.canonicalUrl).pathname });
    expect(download.statusCode).toBe(200);
    expect(download.headers['etag']).toBe(`"${canonical.canonicalSha256}"`);
    const original = await inspectEmbeddingFile(file);
    const served = await inspectEmbeddingFile(download.rawPayload);
    expect(served.family).toBe(original.family);
    expect(served.tensors).toEqual(original.tensors);
  });

  it.each([
    ['a pickle that would run code', () => maliciousPickleFile(), 'embeddingFileUnsafe'],
    ['a zip bomb', () => zipBombFile({ inflatedMiB: 256 }), 'embeddingFileTooLarge'],
    ['a truncated safetensors file', () => truncatedSafetensors(), 'embeddingFileUnparseable'],
    ['a lying safetensors header', () => lyingSafetensorsHeader('shape'), 'embeddingFileUnparseable'],
    ['77 vectors', () => kohyaSafetensorsFile(randomVectors(77, 768, 8), 77, 768), 'unsupportedEmbeddingShape'],
    ['random bytes', () => new Uint8Array(4096).fill(7), 'embeddingFileUnparseable'],
  ])('refuses %s, and the task says why', async (_name, makeFile, code) => {
    const { app } = await gateway();
    const air = publish(makeFile(), { name: 'emb.pt' });
    const { status, body } = await post(app, [task([{ model: air }])]);
    expect(status).toBe(422);
    expect(body.errors).toEqual([expect.objectContaining({ code, parameter: 'embeddings[0].model' })]);
  });

  it('refuses a file the registry scan marks Danger without downloading it', async () => {
    const { app } = await gateway();
    const air = publish(kohyaSafetensorsFile(randomVectors(1, 768, 9), 1, 768), { scan: 'Danger' });
    const downloads = registry.calls.downloads();
    const { status, body } = await post(app, [task([{ model: air }])]);
    expect(status).toBe(422);
    expect(body.errors[0]?.code).toBe('embeddingFlaggedByScan');
    expect(registry.calls.downloads()).toBe(downloads);
  });

  it('refuses a file whose SHA-256 differs from the registry, as retryable', async () => {
    const { app } = await gateway();
    const air = publish(kohyaSafetensorsFile(randomVectors(1, 768, 10), 1, 768), { sha256: 'ab'.repeat(32) });
    const { status, body } = await post(app, [task([{ model: air }])]);
    expect(status).toBe(502);
    expect(body.errors[0]).toMatchObject({ code: 'embeddingChecksumMismatch', retryable: true });
  });

  it('refuses a file over EMBEDDING_MAX_BYTES', async () => {
    const { app } = await gateway({ EMBEDDING_MAX_BYTES: '10000' });
    const air = publish(kohyaSafetensorsFile(randomVectors(8, 768, 12), 8, 768));
    const { body } = await post(app, [task([{ model: air }])]);
    expect(body.errors[0]?.code).toBe('embeddingFileTooLarge');
  });

  it('refuses a LoRA given as an embedding, saying to use lora[]', async () => {
    const { app } = await gateway();
    const air = publish(kohyaSafetensorsFile(randomVectors(1, 768, 13), 1, 768), { type: 'LORA' });
    const downloads = registry.calls.downloads();
    const { body } = await post(app, [task([{ model: air }])]);
    expect(body.errors).toEqual([expect.objectContaining({ code: 'notAnEmbedding', message: expect.stringContaining('lora[]') })]);
    expect(registry.calls.downloads()).toBe(downloads);
  });

  it("trusts the file's shapes over the registry's label, with a warning", async () => {
    const { app } = await gateway();
    const air = publish(kohyaSafetensorsFile(randomVectors(2, 768, 14), 2, 768), { baseModel: 'SDXL 1.0' });
    const onSdxl = await post(app, [task([{ model: air }], 'civitai:101055@128078')]);
    expect(onSdxl.body.errors[0]?.code).toBe('incompatibleEmbeddingFamily');
    const onSd15 = await post(app, [task([{ model: air }])]);
    expect(onSd15.status).toBe(503);
    expect(onSd15.body.errors[0]?.code).toBe('noAvailableWorker');
    expect(onSd15.body.warnings).toEqual([expect.objectContaining({ code: 'embeddingLabelMismatch' })]);
  });

  it('resolves base models it does not know through the registry', async () => {
    const { app } = await gateway();
    const versionId = ++versionCounter;
    registry.addModelVersion({ modelId: 777, versionId, type: 'Checkpoint', baseModel: 'Pony', name: 'Some Pony Model' });
    const embedding = publish(sdxlSafetensorsFile(randomVectors(1, 768, 15), randomVectors(1, 1280, 16), 1), { baseModel: 'Pony' });
    const { status, body } = await post(app, [task([{ model: embedding }], `civitai:777@${versionId}`)]);
    expect(status).toBe(503);
    expect(body.errors[0]?.code).toBe('noAvailableWorker');
    const flux = ++versionCounter;
    registry.addModelVersion({ modelId: 778, versionId: flux, type: 'Checkpoint', baseModel: 'Flux.1 D' });
    const refused = await post(app, [task([{ model: embedding }], `civitai:778@${flux}`)]);
    expect(refused.body.errors[0]?.code).toBe('unsupportedEmbeddingArchitecture');
  });

  it('says unknownModel for a version the registry does not have, and remembers it', async () => {
    const { app } = await gateway();
    const before = registry.calls.versionLookups('999999');
    await post(app, [task([{ model: 'civitai:1@999999' }])]);
    const { body } = await post(app, [task([{ model: 'civitai:1@999999' }])]);
    expect(body.errors[0]?.code).toBe('unknownModel');
    expect(registry.calls.versionLookups('999999') - before).toBe(1);
    expect((await lookUp(app, 'civitai:1@999999')).status).toBe(404);
  });
});

describe('registry outages', () => {
  it('answers a retryable modelUnavailable when the registry is down and nothing is cached', async () => {
    const { app } = await gateway({ REGISTRY_TIMEOUT_MS: '300' });
    const air = publish(kohyaSafetensorsFile(randomVectors(1, 768, 17), 1, 768));
    registry.setBehaviour({ failNext: 1000, failStatus: 503 });
    const { status, body } = await post(app, [task([{ model: air }])]);
    expect(status).toBe(503);
    expect(body.errors[0]).toMatchObject({ code: 'modelUnavailable', retryable: true });
  });

  it('serves a stale record while the registry is down', async () => {
    const { app } = await gateway({ MODEL_CACHE_TTL_SECONDS: '1', MODEL_CACHE_STALE_SECONDS: '3600' });
    const air = publish(kohyaSafetensorsFile(randomVectors(1, 768, 18), 1, 768));
    expect((await lookUp(app, air)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    registry.setBehaviour({ failNext: 1000, failStatus: 500 });
    const { status, body } = await lookUp(app, air);
    expect(status).toBe(200);
    expect(body).toMatchObject({ air, family: 'sd1' });
  });
});

describe('dedupe and the shared cache', () => {
  it('makes one registry call and one download for 200 concurrent requests across two gateways', async () => {
    const [first, second] = [await gateway(), await gateway()];
    const air = publish(kohyaSafetensorsFile(randomVectors(4, 768, 19), 4, 768));
    const versionId = air.split('@')[1];
    registry.setBehaviour({ latencyMs: 150 });
    const downloads = registry.calls.downloads();
    const answers = await Promise.all(Array.from({ length: 200 }, (_, index) => post((index % 2 ? first : second).app, [task([{ model: air }])])));
    expect(answers.every((answer) => answer.body.errors[0]?.code === 'noAvailableWorker')).toBe(true);
    expect(registry.calls.versionLookups(versionId)).toBe(1);
    expect(registry.calls.downloads() - downloads).toBe(1);
  });

  it('serves a file ingested by one gateway from another, through Redis', async () => {
    const [first, second] = [await gateway(), await gateway()];
    const air = publish(kohyaSafetensorsFile(randomVectors(2, 768, 20), 2, 768));
    const record = (await lookUp(first.app, air)).body['file'] as { canonicalUrl: string };
    const served = await second.app.inject({ method: 'GET', url: new URL(record.canonicalUrl).pathname });
    expect(served.statusCode).toBe(200);
    expect(second.resolution.metrics.registryCalls).toBe(0);
  });

  it('keeps serving while Redis is killed and restarted, and shares its cache again after', async () => {
    const { app, resolution } = await gateway();
    const cached = publish(kohyaSafetensorsFile(randomVectors(1, 768, 21), 1, 768));
    expect((await post(app, [task([{ model: cached }])])).body.errors[0]?.code).toBe('noAvailableWorker');

    await redis.kill();
    await until(() => resolution.redis?.isUp() === false);
    const during = publish(kohyaSafetensorsFile(randomVectors(1, 768, 22), 1, 768));
    const answers = await Promise.all([cached, during, cached, during].map((air) => post(app, [task([{ model: air }])])));
    expect(answers.map((answer) => answer.body.errors[0]?.code)).toEqual(Array(4).fill('noAvailableWorker'));

    await redis.restart();
    await until(() => resolution.redis?.isUp() === true);
    const after = publish(kohyaSafetensorsFile(randomVectors(1, 768, 23), 1, 768));
    await post(app, [task([{ model: after }])]);
    const other = await gateway();
    const lookups = registry.calls.versionLookups();
    expect((await post(other.app, [task([{ model: after }])])).body.errors[0]?.code).toBe('noAvailableWorker');
    expect(registry.calls.versionLookups()).toBe(lookups);
    expect(other.resolution.metrics.l2Hits).toBeGreaterThanOrEqual(1);
  });
});

describe('one client cannot starve the others', () => {
  it('sends at most REGISTRY_LOOKUPS_PER_REQUEST cold AIRs of a request to the registry; the rest are deferred, retryably', async () => {
    const { app } = await gateway({ REGISTRY_LOOKUPS_PER_REQUEST: '16' });
    const before = registry.calls.versionLookups();
    // The probe's request: 100 tasks × 10 models nobody has asked about.
    const tasks = Array.from({ length: 100 }, (_, taskIndex) => task(Array.from({ length: 10 }, (_, index) => ({ model: `civitai:${800_000 + taskIndex * 10 + index}@${800_000 + taskIndex * 10 + index}` }))));
    const { body } = await post(app, tasks);
    expect(registry.calls.versionLookups() - before).toBe(16);
    const deferred = body.errors.filter((error) => error.code === 'tooManyNewModels');
    expect(deferred.length).toBeGreaterThan(0);
    expect(deferred[0]).toMatchObject({ retryable: true, retryAfter: 1 });
  });

  it('keeps another key’s first lookup fast while one key floods the registry', async () => {
    const flooder = 'flooding-key-0123456789';
    const other = 'patient-key-0123456789';
    const { app } = await gateway({ API_KEYS: `${flooder},${other}`, REGISTRY_LOOKUPS_PER_REQUEST: '200', REGISTRY_CONCURRENCY: '8', REGISTRY_CONCURRENCY_PER_KEY: '4' });
    registry.setBehaviour({ latencyMs: 150 });
    try {
      const flood = app.inject({
        method: 'POST',
        url: '/v1/tasks',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${flooder}` },
        payload: JSON.stringify(Array.from({ length: 20 }, (_, taskIndex) => task(Array.from({ length: 10 }, (_, index) => ({ model: `civitai:${700_000 + taskIndex * 10 + index}@${700_000 + taskIndex * 10 + index}` }))))),
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      const embedding = publish(kohyaSafetensorsFile(randomVectors(2, 768, 77), 2, 768));
      const started = Date.now();
      const answer = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json', authorization: `Bearer ${other}` }, payload: JSON.stringify([task([{ model: embedding }])]) });
      // 200 lookups of 150 ms, 4 at a time, would hold a queue behind them for 7.5 s; the other key waits for one.
      expect(Date.now() - started).toBeLessThan(2000);
      expect(answer.json().errors[0].code).toBe('noAvailableWorker');
      await flood;
    } finally {
      registry.setBehaviour({ latencyMs: 0 });
    }
  }, 30_000);

  it('answers within REGISTRY_LOOKUP_DEADLINE_MS while the registry hangs', async () => {
    const { app } = await gateway({ REGISTRY_LOOKUP_DEADLINE_MS: '500', REGISTRY_TIMEOUT_MS: '10000' });
    registry.setBehaviour({ hang: true });
    try {
      const started = Date.now();
      const { status, body } = await post(app, [task([{ model: 'civitai:654321@654321' }])]);
      expect(Date.now() - started).toBeLessThan(3000);
      expect(status).toBe(503);
      expect(body.errors[0]).toMatchObject({ code: 'modelUnavailable', retryable: true, message: expect.stringContaining('more than 0.5 s') });
    } finally {
      registry.setBehaviour({ hang: false });
    }
  });
});

describe('bounds and odd inputs', () => {
  it('resolves no more embeddings of a task than it may carry', async () => {
    const { app } = await gateway({ MAX_EMBEDDINGS_PER_TASK: '3' });
    const before = registry.calls.versionLookups();
    const embeddings = Array.from({ length: 60 }, (_, index) => ({ model: `civitai:${900_000 + index}@${900_000 + index}` }));
    const { status, body } = await post(app, [task(embeddings)]);
    expect(status).toBe(400);
    expect(body.errors[0]?.code).toBe('tooManyEmbeddings');
    expect(registry.calls.versionLookups() - before).toBeLessThanOrEqual(3);
  });

  it('never asks the registry about ids Civitai cannot have, and takes its 4xx as final', async () => {
    const { app } = await gateway();
    const before = registry.calls.versionLookups();
    const { body } = await post(app, [task([{ model: 'civitai:abc@def' }])]);
    expect(body.errors[0]?.code).toBe('unknownModel');
    expect(registry.calls.versionLookups()).toBe(before);

    registry.setBehaviour({ failNext: 1, failStatus: 400 });
    const refused = await post(app, [task([{ model: 'civitai:31337@31337' }])]);
    expect(refused.status).toBe(400);
    expect(refused.body.errors[0]).toMatchObject({ code: 'unknownModel', retryable: false });
    expect(refused.body.errors[0]?.message).not.toContain('CIVITAI');
  });

  it('answers malformed and long model paths in the documented shape', async () => {
    const { app } = await gateway();
    const bad = await app.inject({ method: 'GET', url: '/v1/models/%E0%A4%A' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0].code).toBe('invalidUrl');
    expect(bad.headers['x-request-id']).toBeDefined();
    const long = await app.inject({ method: 'GET', url: `/v1/models/${encodeURIComponent(`runware:${'x'.repeat(120)}@1`)}` });
    expect(long.statusCode).toBe(404);
    expect(long.json().errors[0].code).toBe('modelNotFound');
  });

  it('lets a retryable refusal be retried soon, not after the negative TTL', async () => {
    const { app } = await gateway();
    const file = kohyaSafetensorsFile(randomVectors(1, 768, 30), 1, 768);
    const air = publish(file, { sha256: 'cd'.repeat(32) });
    expect((await post(app, [task([{ model: air }])])).body.errors[0]?.code).toBe('embeddingChecksumMismatch');
    const [modelId, versionId] = air.replace('civitai:', '').split('@');
    registry.addModelVersion({ modelId: modelId ?? '', versionId: versionId ?? '', type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'embedding.safetensors', bytes: file }] });
    await new Promise((resolve) => setTimeout(resolve, 5200));
    expect((await post(app, [task([{ model: air }])])).body.errors[0]?.code).toBe('noAvailableWorker');
  });
});
