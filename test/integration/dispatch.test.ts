import { readTaskResponse } from '../helper.js';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { kohyaSafetensorsFile, randomVectors } from '../support/embedding-fixtures.js';
import { loraFile } from '../support/lora-fixtures.js';
import { startFakeRegistry, type FakeRegistry } from '../support/fake-registry.js';
import { startFakeWorker, type FakeWorker } from '../support/fake-worker.js';
import { startGateway, until, type TestGateway } from '../support/gateway.js';

const SD15 = 'civitai:4384@128713';
const SDXL = 'civitai:101055@128078';

let registry: FakeRegistry;
const workers: FakeWorker[] = [];
const gateways: TestGateway[] = [];

beforeAll(async () => {
  registry = await startFakeRegistry();
  registry.addModelVersion({ modelId: 7808, versionId: 9208, type: 'TextualInversion', baseModel: 'SD 1.5', trainedWords: ['easynegative'], files: [{ name: 'easynegative.safetensors', bytes: kohyaSafetensorsFile(randomVectors(8, 768, 1), 8, 768) }] });
  registry.addModelVersion({ modelId: 8801, versionId: 9901, type: 'LORA', baseModel: 'SD 1.5', files: [{ name: 'style.safetensors', bytes: loraFile('sd1', 'kohya') }] });
  registry.addModelVersion({ modelId: 8802, versionId: 9902, type: 'LORA', baseModel: 'SD 1.5', files: [{ name: 'old.pt', type: 'Model', bytes: loraFile('sd1', 'kohya') }] });
  registry.addModelVersion({ modelId: 5555, versionId: 6666, type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'style.pt.safetensors', bytes: kohyaSafetensorsFile(randomVectors(2, 768, 2), 2, 768) }] });
});

afterEach(async () => {
  await Promise.all(gateways.splice(0).map((gateway) => gateway.close()));
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
});

afterAll(async () => {
  await registry.close();
});

async function fleet(count: number, options: Parameters<typeof startFakeWorker>[0] = {}): Promise<FakeWorker[]> {
  const started = await Promise.all(Array.from({ length: count }, () => startFakeWorker(options)));
  workers.push(...started);
  return started;
}

async function gateway(pool: FakeWorker[], extra: Record<string, string> = {}): Promise<TestGateway> {
  const started = await startGateway({
    CIVITAI_BASE_URL: registry.url,
    WORKER_URLS: pool.map((worker) => worker.url).join(','),
    WORKER_HEALTH_INTERVAL_MS: '100',
    TASK_TIMEOUT_MS: '5000',
    TASK_FIRST_BYTE_TIMEOUT_MS: '1000',
    ...extra,
  });
  gateways.push(started);
  await until(() => started.dispatch.pool?.workers.every((worker) => worker.healthy) ?? false);
  return started;
}

function task(overrides: Record<string, unknown> = {}) {
  return { taskType: 'imageInference', taskUUID: randomUUID(), positivePrompt: 'a lighthouse at dusk', model: SD15, width: 512, height: 512, ...overrides };
}

interface Body {
  data: { taskUUID: string; imageUUID: string; seed: number | bigint | string; imageURL?: string; imageBase64Data?: string; imageDataURI?: string; cost?: number }[];
  errors: { code: string; taskUUID?: string; message: string; retryable: boolean; retryAfter?: number; queuePosition?: number }[];
}

async function post(app: TestGateway['app'], tasks: unknown[]) {
  const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(tasks) });
  return { status: response.statusCode, body: readTaskResponse(response.body) as unknown as Body, headers: response.headers, raw: response.body };
}

describe('dispatch to GPU workers', () => {
  it('turns a task with two embeddings into images, sending the worker resolved files and placements', async () => {
    const [worker] = await fleet(1);
    const { app } = await gateway([worker!], { PUBLIC_BASE_URL: 'http://gateway.test:8080' });
    const sent = task({
      numberResults: 2,
      outputType: 'base64Data',
      outputFormat: 'PNG',
      negativePrompt: 'blurry',
      embeddings: [
        { model: 'civitai:5555@6666', weight: 0.7 },
        { model: 'civitai:7808@9208', weight: -1.5 },
      ],
    });
    const payload = JSON.stringify([sent]).replace('"width"', '"seed":18446744073709551615,"width"');
    const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload });
    expect(response.statusCode).toBe(200);
    // A JSON number with every digit, as Runware sends it; seeds wrap at 2^64.
    expect(response.body).toContain('"seed":18446744073709551615');
    expect(response.body).not.toContain('"errors"');
    const body = readTaskResponse(response.body) as unknown as Body;
    expect(body.data.map((image) => image.seed)).toEqual([18446744073709551615n, 0]);
    for (const image of body.data) {
      expect(image.taskUUID).toBe(sent.taskUUID);
      expect(Buffer.from(image.imageBase64Data ?? '', 'base64').subarray(1, 4).toString()).toBe('PNG');
    }

    const job = worker!.receivedJobs.at(-1);
    // One job id per attempt, so a late cancel of one attempt never reaches another.
    expect(job).toMatchObject({ jobId: `${sent.taskUUID}.1`, model: { air: SD15, family: 'sd1' }, negativePrompt: 'blurry', numberResults: 2, seed: '18446744073709551615', cfgScale: 7 });
    expect(job?.embeddings).toEqual([
      expect.objectContaining({ air: 'civitai:5555@6666', weight: 0.7, placement: 'positive', vectors: 2, family: 'sd1' }),
      expect.objectContaining({ air: 'civitai:7808@9208', weight: 1.5, placement: 'negative', vectors: 8, family: 'sd1' }),
    ]);
    // The URL a worker gets is the gateway's own, and the file behind it is the canonical copy.
    const embedding = job?.embeddings[1];
    expect(embedding?.url).toBe(`http://gateway.test:8080/v1/embeddings/${embedding?.sha256}.safetensors`);
    const file = await app.inject({ method: 'GET', url: `/v1/embeddings/${embedding?.sha256}.safetensors` });
    expect(file.statusCode).toBe(200);
  });

  it('delivers images as data URIs and as URLs served by the gateway, with cost when asked', async () => {
    const [worker] = await fleet(1);
    const { app } = await gateway([worker!]);
    const { body } = await post(app, [
      task({ outputType: 'dataURI', outputFormat: 'WEBP' }),
      task({ outputType: 'URL', outputFormat: 'JPG', includeCost: true, steps: 10 }),
    ]);
    expect(body.errors).toEqual([]);
    const [dataUri, url] = [body.data.find((image) => image.imageDataURI), body.data.find((image) => image.imageURL)];
    expect(dataUri?.imageDataURI).toMatch(/^data:image\/webp;base64,/);
    expect(url?.cost).toBeCloseTo((512 * 512 * 10 * 0.0001) / 1e6, 7);
    const image = await app.inject({ method: 'GET', url: new URL(url?.imageURL ?? '').pathname });
    expect(image.statusCode).toBe(200);
    expect(image.headers['content-type']).toBe('image/jpeg');
    expect(image.rawPayload.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
    expect((await app.inject({ method: 'GET', url: '/v1/images/../../etc/passwd' })).statusCode).toBe(404);
  });

  it('names the model when no worker serves it', async () => {
    const [worker] = await fleet(1);
    const { app } = await gateway([worker!]);
    const { status, body } = await post(app, [task({ model: 'runware:101@1' })]);
    expect(status).toBe(503);
    expect(body.errors[0]).toMatchObject({ code: 'noAvailableWorker', retryable: true, message: expect.stringContaining('runware:101@1') });
  });

  it("reports a worker's refusal of the task as the task's error, without retrying elsewhere", async () => {
    const pool = await fleet(3);
    for (const worker of pool) worker.setBehaviour({ errorEvent: { code: 'embeddingShapeMismatch', message: 'clip_l is 1024 wide', retryable: false } });
    const { app } = await gateway(pool);
    const { status, body } = await post(app, [task()]);
    expect(status).toBe(422);
    expect(body.errors[0]).toMatchObject({ code: 'workerRejectedTask', retryable: false, message: expect.stringContaining('embeddingShapeMismatch') });
    expect(pool.reduce((sum, worker) => sum + worker.stats.jobs(), 0)).toBe(1);
  });

  it('retries a crashed job on another worker and still answers once', async () => {
    const pool = await fleet(2);
    pool[0]!.setBehaviour({ crashAfterAccept: true });
    const { app } = await gateway(pool, { BREAKER_FAILURE_THRESHOLD: '100' });
    const tasks = Array.from({ length: 10 }, () => task());
    const { status, body } = await post(app, tasks);
    expect(status).toBe(200);
    expect(body.errors).toEqual([]);
    expect(body.data.map((image) => image.taskUUID).sort()).toEqual(tasks.map((t) => t.taskUUID).sort());
  });

  it('loses no task when a worker is killed during a load of 300 tasks', async () => {
    const pool = await fleet(3, { maxConcurrency: 8 });
    for (const worker of pool) worker.setBehaviour({ latencyMs: 40 });
    // Generous deadlines: this test is about failures, not about a loaded CI machine's latency.
    const { app } = await gateway(pool, { QUEUE_MAX: '1000', QUEUE_WAIT_MS: '30000', TASK_TIMEOUT_MS: '30000', TASK_FIRST_BYTE_TIMEOUT_MS: '10000' });
    const tasks = Array.from({ length: 300 }, () => task());
    const requests = Array.from({ length: 30 }, (_, index) => post(app, tasks.slice(index * 10, index * 10 + 10)));
    await until(() => pool[0]!.stats.accepted() >= 10);
    await pool[0]!.kill();
    const answers = await Promise.all(requests);

    const outcomes = new Map<string, number>();
    for (const { body } of answers) {
      for (const image of body.data) outcomes.set(image.taskUUID, (outcomes.get(image.taskUUID) ?? 0) + 1);
      for (const error of body.errors) {
        expect(error.retryable).toBe(true);
        outcomes.set(error.taskUUID ?? '', (outcomes.get(error.taskUUID ?? '') ?? 0) + 1);
      }
    }
    // Every task answered exactly once: one image (numberResults 1) or one retryable error.
    expect([...outcomes.keys()].sort()).toEqual(tasks.map((t) => t.taskUUID).sort());
    expect([...outcomes.values()].every((count) => count === 1)).toBe(true);
    const succeeded = answers.reduce((sum, { body }) => sum + body.data.length, 0);
    const failures = answers.flatMap(({ body }) => body.errors.map((error) => `${error.code}: ${error.message}`));
    expect(succeeded, failures.slice(0, 5).join('\n')).toBeGreaterThanOrEqual(290);
  });

  it('answers a saturated pool with 429/503 and Retry-After instead of queueing without bound', async () => {
    const pool = await fleet(2, { maxConcurrency: 1 });
    for (const worker of pool) worker.setBehaviour({ latencyMs: 400 });
    const gatewayUnderTest = await gateway(pool, { QUEUE_MAX: '3', QUEUE_WAIT_MS: '300' });
    let longestQueue = 0;
    const sampler = setInterval(() => (longestQueue = Math.max(longestQueue, gatewayUnderTest.dispatch.pool?.queueLength ?? 0)), 5);
    const answers = await Promise.all(Array.from({ length: 20 }, () => post(gatewayUnderTest.app, [task()])));
    clearInterval(sampler);

    const byCode = (code: string) => answers.filter((answer) => answer.body.errors[0]?.code === code);
    expect(answers.filter((answer) => answer.status === 200).length).toBeGreaterThanOrEqual(2);
    expect(byCode('queueFull').length).toBeGreaterThan(0);
    expect(byCode('queueTimeout').length).toBeGreaterThan(0);
    for (const answer of byCode('queueFull')) {
      expect(answer.status).toBe(429);
      expect(Number(answer.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(answer.body.errors[0]).toMatchObject({ retryable: true, queuePosition: 4 });
    }
    for (const answer of byCode('queueTimeout')) {
      expect(answer.status).toBe(503);
      expect(answer.headers['retry-after']).toBeDefined();
    }
    expect(longestQueue).toBeLessThanOrEqual(3);
  });

  it('times out a hung worker, retries elsewhere, and opens its breaker', async () => {
    const pool = await fleet(2);
    pool[0]!.setBehaviour({ hang: true });
    const gatewayUnderTest = await gateway(pool, { TASK_FIRST_BYTE_TIMEOUT_MS: '500', BREAKER_FAILURE_THRESHOLD: '2', BREAKER_COOLDOWN_MS: '60000' });
    // Placement picks between the two at random (and the less loaded while a hung job is being cancelled), so
    // tasks go until the hung worker has had two: a fixed count of twelve missed it now and then on a loaded
    // machine. Every one is answered from the other worker.
    for (let sent = 0; pool[0]!.stats.jobs() < 2 && sent < 200; sent++) {
      const { status } = await post(gatewayUnderTest.app, [task()]);
      expect(status).toBe(200);
    }
    const hung = gatewayUnderTest.dispatch.pool?.workers.find((worker) => worker.url === pool[0]!.url);
    expect(hung?.breaker.state()).toBe('open');
    expect(pool[0]!.stats.jobs()).toBe(2);
    // Open: what comes next goes elsewhere.
    for (let index = 0; index < 8; index++) expect((await post(gatewayUnderTest.app, [task()])).status).toBe(200);
    expect(pool[0]!.stats.jobs()).toBe(2);
    // The hung jobs were cancelled on the worker, freeing its slots. (The cancel is sent without waiting for
    // it, so on a loaded machine it may land after the answer.)
    await until(() => pool[0]!.stats.cancels().length >= 2);
    expect(pool[0]!.stats.cancels().length).toBe(2);
  });

  it('does not hold a busy or draining worker against its breaker', async () => {
    const [worker] = await fleet(1);
    worker!.setBehaviour({ failureRate: 1, failStatus: 429 });
    const started = await gateway([worker!], { BREAKER_FAILURE_THRESHOLD: '1', DISPATCH_MAX_ATTEMPTS: '2' });
    const { status, body } = await post(started.app, [task()]);
    expect(status).toBe(502);
    expect(body.errors[0]?.message).toContain('429');
    expect(started.dispatch.pool?.workers[0]?.breaker.state()).toBe('closed');
    worker!.setBehaviour({ failureRate: 0 });
    expect((await post(started.app, [task()])).status).toBe(200);
  });

  it('answers timeoutWorker (504) when the only worker never accepts', async () => {
    const [worker] = await fleet(1);
    worker!.setBehaviour({ hang: true });
    const { app } = await gateway([worker!], { TASK_FIRST_BYTE_TIMEOUT_MS: '150', DISPATCH_MAX_ATTEMPTS: '2' });
    const { status, body } = await post(app, [task()]);
    expect(status).toBe(504);
    expect(body.errors[0]).toMatchObject({ code: 'timeoutWorker', retryable: true });
  });

  it('answers workerFailed (502) when every attempt fails, never a fake success', async () => {
    const pool = await fleet(2);
    for (const worker of pool) worker.setBehaviour({ failureRate: 1 });
    const { app } = await gateway(pool, { BREAKER_FAILURE_THRESHOLD: '100' });
    const { status, body } = await post(app, [task()]);
    expect(status).toBe(502);
    expect(body.data).toEqual([]);
    expect(body.errors[0]).toMatchObject({ code: 'workerFailed', retryable: true });
  });

  it('prefers the worker that has the model loaded', async () => {
    const pool = await fleet(3, { models: [{ air: SD15, family: 'sd1', loaded: false }, { air: SDXL, family: 'sdxl', loaded: false }] });
    pool[1]!.setModelLoaded(SDXL, true);
    const { app } = await gateway(pool);
    await until(() => true);
    for (let index = 0; index < 30; index++) await post(app, [task({ model: SDXL, width: 1024, height: 1024 })]);
    const jobs = pool.map((worker) => worker.stats.jobs());
    expect(jobs[1]).toBe(30);
  });

  it('cancels the job on the worker when the client disconnects', async () => {
    const [worker] = await fleet(1);
    worker!.setBehaviour({ latencyMs: 5000 });
    const started = await gateway([worker!]);
    const address = await started.app.listen({ port: 0, host: '127.0.0.1' });
    const sent = task();
    const client = new AbortController();
    const pending = request(`${address}/v1/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([sent]),
      signal: client.signal,
    }).catch(() => undefined);
    await until(() => worker!.stats.accepted() === 1);
    client.abort();
    await pending;
    await until(() => worker!.stats.cancels().includes(`${sent.taskUUID}.1`));
    await until(() => worker!.stats.running() === 0);
    await until(() => started.dispatch.pool?.workers[0]?.inFlight === 0);
  });
});

describe('worker capabilities', () => {
  it('sends checkNSFW only to a worker with an NSFW classifier and reports its verdict on each image', async () => {
    const [plain] = await fleet(1);
    const [checker] = await fleet(1, { capabilities: ['nsfwCheck'] });
    const { app } = await gateway([plain!, checker!]);
    const checked = await post(app, [task({ checkNSFW: true, numberResults: 2, positivePrompt: 'nsfw test' }), task({ checkNSFW: true })]);
    expect(checked.status).toBe(200);
    expect(checked.body.data.map((image) => (image as { NSFWContent?: boolean }).NSFWContent)).toEqual([true, true, false]);
    expect(checker!.stats.jobs()).toBe(2);
    expect(plain!.stats.jobs()).toBe(0);
    // Without the check, images carry no verdict at all: never a made-up false.
    const unchecked = await post(app, [task()]);
    expect(unchecked.body.data[0]).not.toHaveProperty('NSFWContent');
  });

  it('answers checkNSFW with a clear retryable error when no worker has a classifier', async () => {
    const [plain] = await fleet(1);
    const { app } = await gateway([plain!]);
    const { status, body } = await post(app, [task({ checkNSFW: true })]);
    expect(status).toBe(503);
    expect(body.errors[0]).toMatchObject({ code: 'noAvailableWorker', parameter: 'checkNSFW', retryable: true, message: expect.stringContaining('check images for NSFW content') });
    expect(plain!.stats.jobs()).toBe(0);
  });

  it('sends outputQuality other than 95 only to workers that apply it', async () => {
    const [plain] = await fleet(1);
    const [encoder] = await fleet(1, { capabilities: ['outputQuality'] });
    const { app } = await gateway([plain!, encoder!]);
    expect((await post(app, [task({ outputFormat: 'JPG', outputQuality: 40 })])).status).toBe(200);
    expect(encoder!.receivedJobs.at(-1)).toMatchObject({ outputFormat: 'JPG', outputQuality: 40 });
    expect(plain!.stats.jobs()).toBe(0);
    // 95 is every worker's default, and PNG takes no quality: any worker will do, and none is sent the field.
    // (24 rounds: the choice between two idle workers is random, and 6 missed the plain one 1 time in 64.)
    for (let round = 0; round < 24; round++) await post(app, [task({ outputFormat: round % 2 ? 'PNG' : 'JPG', outputQuality: round % 2 ? 40 : 95 })]);
    expect(plain!.stats.jobs()).toBeGreaterThan(0);
    for (const job of [...plain!.receivedJobs, ...encoder!.receivedJobs.slice(1)]) expect(job.outputQuality).toBeUndefined();
  });
});

describe('conditioning capabilities', () => {
  it('sends promptWeighting and the words that name an embedding only to workers that read them', async () => {
    const [plain] = await fleet(1);
    const [reader] = await fleet(1, { capabilities: ['promptWeighting', 'embeddingMentions'] });
    const { app } = await gateway([plain!, reader!]);
    const named = task({ promptWeighting: 'sdEmbeds', positivePrompt: 'a (lighthouse:1.2)', negativePrompt: '(EasyNegative:1.3), blurry', embeddings: [{ model: 'civitai:7808@9208', weight: -1 }] });
    expect((await post(app, [named])).status).toBe(200);
    expect(reader!.receivedJobs.at(-1)).toMatchObject({
      promptWeighting: 'sdEmbeds',
      negativePrompt: '(EasyNegative:1.3), blurry',
      embeddings: [{ air: 'civitai:7808@9208', placement: 'negative', weight: 1, mentions: ['easynegative'] }],
    });
    // A prompt that names nothing needs neither: any worker takes it, and none is sent the fields.
    for (let round = 0; round < 24; round++) await post(app, [task({ embeddings: [{ model: 'civitai:7808@9208', weight: -1 }] })]);
    expect(plain!.stats.jobs()).toBeGreaterThan(0);
    for (const job of [...plain!.receivedJobs, ...reader!.receivedJobs.slice(1)]) {
      expect(job.promptWeighting).toBeUndefined();
      expect(job.embeddings[0]?.mentions).toBeUndefined();
    }
  });

  it('answers with a clear retryable error, naming the field, when no worker can honour it — never an image without it', async () => {
    const [plain] = await fleet(1, { capabilities: ['promptWeighting'] });
    const { app } = await gateway([plain!]);
    const { status, body } = await post(app, [task({ negativePrompt: 'easynegative', embeddings: [{ model: 'civitai:7808@9208', weight: -1 }] })]);
    expect(status).toBe(503);
    expect(body.errors[0]).toMatchObject({ code: 'noAvailableWorker', parameter: 'embeddings', retryable: true, message: expect.stringContaining('where the prompt names them') });
    expect(plain!.stats.jobs()).toBe(0);
  });
});

describe('LoRAs', () => {
  it('go only to workers that apply them, with the registry file and SHA-256 and no credentials', async () => {
    const [plain] = await fleet(1);
    const [applier] = await fleet(1, { capabilities: ['loras'] });
    const { app } = await gateway([plain!, applier!], { CIVITAI_TOKEN: 'registry-secret-token' });
    const { status, body } = await post(app, [task({ lora: [{ model: 'civitai:8801@9901', weight: 0.7 }], embeddings: [{ model: 'civitai:7808@9208', weight: -1 }] })]);
    expect(status, JSON.stringify(body)).toBe(200);
    const job = applier!.receivedJobs.at(-1);
    expect(job?.loras).toEqual([
      { air: 'civitai:8801@9901', sha256: expect.stringMatching(/^[0-9a-f]{64}$/), url: expect.stringContaining(`${registry.url}/api/download/`), sizeBytes: expect.any(Number), weight: 0.7, family: 'sd1' },
    ]);
    expect(JSON.stringify(job)).not.toContain('registry-secret-token');
    expect(job?.embeddings).toHaveLength(1);
    // The gateway read the header by range: the file itself was never downloaded.
    expect(registry.calls.downloads('/models/9901/style.safetensors')).toBe(0);
    expect(registry.calls.rangeReads('/models/9901/style.safetensors')).toBe(2);
    expect(plain!.stats.jobs()).toBe(0);
    // GET /v1/models shows what the header said.
    const record = (await app.inject({ method: 'GET', url: '/v1/models/civitai:8801@9901' })).json();
    expect(record).toMatchObject({ type: 'lora', family: 'sd1', loraFile: { naming: 'kohya', format: 'safetensors', evidence: expect.stringContaining('768-wide') } });
  });

  it('answer a retryable error naming lora when no worker applies them, and need none at weight 0', async () => {
    const [plain] = await fleet(1);
    const { app } = await gateway([plain!]);
    const refused = await post(app, [task({ lora: [{ model: 'civitai:8801@9901', weight: 1 }] })]);
    expect(refused.status).toBe(503);
    expect(refused.body.errors[0]).toMatchObject({ code: 'noAvailableWorker', parameter: 'lora', retryable: true, message: expect.stringContaining('apply LoRAs') });
    expect(plain!.stats.jobs()).toBe(0);
    const ineffective = await post(app, [task({ lora: [{ model: 'civitai:8801@9901', weight: 0 }] })]);
    expect(ineffective.status).toBe(200);
    expect(plain!.receivedJobs.at(-1)?.loras).toBeUndefined();
  });

  it('refuse a pickle LoRA at resolution, never sending it anywhere', async () => {
    const [applier] = await fleet(1, { capabilities: ['loras'] });
    const { app } = await gateway([applier!]);
    const { status, body } = await post(app, [task({ lora: [{ model: 'civitai:8802@9902', weight: 1 }] })]);
    expect(status).toBe(422);
    expect(body.errors[0]).toMatchObject({ code: 'loraFormatUnsupported', retryable: false });
    expect(applier!.stats.jobs()).toBe(0);
  });
});

describe('workers that misbehave', () => {
  it('never delivers a result that names another job: retried on the good worker, the liar loses trust', async () => {
    const [liar, good] = await fleet(2);
    liar!.setBehaviour({ resultJobId: 'some-other-job.1' });
    const { app, dispatch } = await gateway([liar!, good!], { BREAKER_FAILURE_THRESHOLD: '3' });
    const tasks = Array.from({ length: 40 }, () => task({ outputType: 'base64Data' }));
    const answers = await Promise.all(tasks.map((sent) => post(app, [sent])));
    for (const [index, answer] of answers.entries()) {
      expect(answer.status).toBe(200);
      expect(answer.body.data.map((image) => image.taskUUID)).toEqual([tasks[index]!['taskUUID']]);
    }
    // Its results never counted: only the good worker completed tasks for clients; the liar's breaker opened.
    expect(good!.stats.completed()).toBe(40);
    expect(dispatch.pool?.workers.find((candidate) => candidate.url === liar!.url)?.breaker.state()).not.toBe('closed');
  });

  it('never delivers images whose seeds are not the job’s', async () => {
    const [liar] = await fleet(1);
    liar!.setBehaviour({ seedOffset: 1 });
    const { app } = await gateway([liar!]);
    const { status, body } = await post(app, [task({ seed: 7 })]);
    expect(status).toBe(502);
    expect(body.errors[0]).toMatchObject({ code: 'workerFailed', message: expect.stringContaining('seed 8 for image 0, not 7') });
  });

  it('refuses a result line far longer than the job can need, and keeps its memory', async () => {
    const [bloated] = await fleet(1);
    // 20 MB of "image" for a 256×256 task: about 40 times what the worst PNG of that size can take.
    bloated!.setBehaviour({ pngBytes: 20_000_000 });
    const { app } = await gateway([bloated!], { BREAKER_FAILURE_THRESHOLD: '100', DISPATCH_MAX_ATTEMPTS: '1' });
    const before = process.memoryUsage().rss;
    const answers = await Promise.all(Array.from({ length: 4 }, () => post(app, [task({ width: 256, height: 256, outputType: 'base64Data', outputFormat: 'PNG' })])));
    for (const answer of answers) {
      expect(answer.status).toBe(502);
      expect(answer.body.errors[0]?.message).toContain('more than this job');
    }
    expect(process.memoryUsage().rss - before).toBeLessThan(400 * 1024 * 1024);
  });

  it('gives up on a worker that accepted and then went silent, and runs the task on a free one', async () => {
    const [silent, good] = await fleet(2);
    silent!.setBehaviour({ hangAfterAccept: true });
    const { app } = await gateway([silent!, good!], { TASK_PROGRESS_TIMEOUT_MS: '300', TASK_TIMEOUT_MS: '60000' });
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 6 }, () => post(app, [task()])));
    for (const answer of answers) expect(answer.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(5000);
    // The silent worker was told to stop each job it held.
    await until(() => silent!.stats.cancels().length === silent!.stats.accepted());
    expect(silent!.stats.accepted()).toBeGreaterThan(0);
  });

  it('trusts a restarted worker again at once, without sitting out the breaker’s cool-down', async () => {
    const [only] = await fleet(1);
    const { app, dispatch } = await gateway([only!], { BREAKER_FAILURE_THRESHOLD: '2', BREAKER_COOLDOWN_MS: '60000', DISPATCH_MAX_ATTEMPTS: '1' });
    only!.setBehaviour({ failureRate: 1 });
    for (let round = 0; round < 2; round++) expect((await post(app, [task()])).status).toBe(502);
    const pooled = dispatch.pool!.workers[0]!;
    expect(pooled.breaker.state()).toBe('open');
    await only!.kill();
    await until(() => !pooled.healthy);
    only!.setBehaviour({ failureRate: 0 });
    await only!.restart();
    await until(() => pooled.healthy);
    expect((await post(app, [task()])).status).toBe(200);
    expect(pooled.breaker.state()).toBe('closed');
  });
});

describe('answers too large to build', () => {
  it('answers 100 tasks × 3 inline images of 2 MiB without a 500: what no job can need is refused per task', async () => {
    const [worker] = await fleet(1, { maxConcurrency: 8 });
    worker!.setBehaviour({ pngBytes: 2 * 1024 * 1024 });
    // Health polled slowly: the fake worker shares this process, busy making megabytes, and must not look down.
    const { app } = await gateway([worker!], { BREAKER_FAILURE_THRESHOLD: '1000', DISPATCH_MAX_ATTEMPTS: '1', QUEUE_MAX: '1000', TASK_TIMEOUT_MS: '60000', WORKER_HEALTH_INTERVAL_MS: '5000' });
    const { status, body } = await post(app, Array.from({ length: 100 }, () => task({ numberResults: 3, outputType: 'base64Data', outputFormat: 'PNG' })));
    // 81 tasks fit the 64 megapixels of inline images an answer carries; their workers' results are far larger
    // than 3 PNGs of 512² can be, so each fails on its own; the 19 beyond the budget never reach a GPU.
    expect(status).toBe(400);
    const codes = body.errors.map((error) => error.code);
    expect(codes).toHaveLength(100);
    expect(codes.filter((code) => code === 'workerFailed')).toHaveLength(81);
    expect(codes.filter((code) => code === 'inlineOutputTooLarge')).toHaveLength(19);
    expect(worker!.stats.jobs()).toBe(81);
  }, 60_000);

  it('refuses, before any GPU time, the tasks that would take one answer past its inline images budget', async () => {
    const [worker] = await fleet(1);
    const { app } = await gateway([worker!], { INLINE_OUTPUT_MAX_MEGAPIXELS: '2' });
    const tasks = Array.from({ length: 10 }, () => task({ outputType: 'base64Data' }));
    const byUrl = task({ numberResults: 20, width: 1024, height: 1024 });
    const { status, body } = await post(app, [...tasks, byUrl]);
    expect(status).toBe(200);
    // 512² is 0.26 megapixels: seven fit in 2.
    expect(body.data.filter((image) => image.imageBase64Data)).toHaveLength(7);
    expect(body.errors.map((error) => [error.code, error.taskUUID])).toEqual(tasks.slice(7).map((sent) => ['inlineOutputTooLarge', sent['taskUUID']]));
    // Images by URL are not in the answer: they count for nothing.
    expect(body.data.filter((image) => image.taskUUID === byUrl['taskUUID'])).toHaveLength(20);
    expect(worker!.stats.jobs()).toBe(8);
  });
});
