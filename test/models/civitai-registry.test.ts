import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { backoffDelayMs, parseRetryAfterMs } from '../../src/http/retry-policy.js';
import {
  createCivitaiRegistry,
  RegistryUnavailableError,
  type CivitaiRegistryOptions,
  type RegistryLookup,
  type RegistryModelVersion,
} from '../../src/models/civitai-registry.js';
import { freePort } from '../support/free-port.js';
import { startFakeRegistry, type FakeModelFile, type FakeRegistry } from '../support/fake-registry.js';

const easyNegativeBytes = new TextEncoder().encode('not really a safetensors file, but 24.6 KB of it would be');

let fake: FakeRegistry;
let agent: Agent;
let delays: number[];

beforeEach(async () => {
  fake = await startFakeRegistry();
  agent = new Agent();
  delays = [];
});

afterEach(async () => {
  await agent.destroy();
  await fake.close();
});

function registry(overrides: Partial<CivitaiRegistryOptions> = {}) {
  return createCivitaiRegistry({
    baseUrl: fake.url,
    timeoutMs: 2_000,
    maxAttempts: 3,
    dispatcher: agent,
    sleep: async (ms) => {
      delays.push(ms);
    },
    random: () => 0.5,
    ...overrides,
  });
}

function found(lookup: RegistryLookup): RegistryModelVersion {
  if (lookup.kind !== 'found') throw new Error(`expected a found lookup, got ${lookup.kind}`);
  return lookup.version;
}

async function lookupError(promise: Promise<unknown>): Promise<RegistryUnavailableError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(RegistryUnavailableError);
  return error as RegistryUnavailableError;
}

/** A one-route server for answers the fake registry never gives; counts the connections it accepted. */
async function startServer(listener: RequestListener): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  const server = createServer(listener);
  let connections = 0;
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe('createCivitaiRegistry: mapping', () => {
  it('maps every field of a model version', async () => {
    fake.addModelVersion({
      modelId: 7808,
      versionId: 9208,
      name: 'EasyNegative',
      versionName: 'v1.0',
      type: 'TextualInversion',
      baseModel: 'SD 1.5',
      trainedWords: ['easynegative'],
      files: [{ name: 'easynegative.safetensors', bytes: easyNegativeBytes }],
    });

    const version = found(await registry().getModelVersion('9208'));

    const downloadUrl = `${fake.url}/api/download/models/9208/easynegative.safetensors`;
    expect(version).toEqual({
      modelId: '7808',
      versionId: '9208',
      name: 'EasyNegative (v1.0)',
      type: 'textualInversion',
      rawType: 'TextualInversion',
      baseModel: 'SD 1.5',
      family: 'sd1',
      trainedWords: ['easynegative'],
      files: [
        {
          name: 'easynegative.safetensors',
          sizeBytes: easyNegativeBytes.byteLength,
          format: 'SafeTensor',
          sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
          downloadUrl,
          primary: true,
          pickleScan: 'Success',
          virusScan: 'Success',
        },
      ],
      file: expect.objectContaining({ name: 'easynegative.safetensors', downloadUrl }),
    });
    expect(fake.calls.versionLookups('9208')).toBe(1);
  });

  it('turns Civitai fractional sizeKB into bytes and hashes into lower-case hex', async () => {
    fake.addModelVersion({
      modelId: 1,
      versionId: 2,
      type: 'TextualInversion',
      baseModel: 'SD 1.5',
      files: [{ name: 'e.safetensors', sizeKB: 24.6, sha256: 'C74B4E810B030F6B75FDE959E2DB678C268D07115B85356D3C0138BA5EB42340' }],
    });
    const { file } = found(await registry().getModelVersion('2'));
    expect(file?.sizeBytes).toBe(25190);
    expect(file?.sha256).toBe('c74b4e810b030f6b75fde959e2db678c268d07115b85356d3c0138ba5eb42340');
  });

  it('leaves a hash that is not a SHA-256 out', async () => {
    fake.addModelVersion({ modelId: 1, versionId: 2, type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'e.pt', sha256: 'abc' }] });
    expect(found(await registry().getModelVersion('2')).file?.sha256).toBeUndefined();
  });

  it.each([
    ['Checkpoint', 'checkpoint'],
    ['TextualInversion', 'textualInversion'],
    ['LORA', 'lora'],
    ['LoCon', 'lora'],
    ['DoRA', 'lora'],
    ['Hypernetwork', 'other'],
    ['AestheticGradient', 'other'],
    ['Controlnet', 'other'],
    ['Poses', 'other'],
    ['VAE', 'other'],
    ['Upscaler', 'other'],
    ['MotionModule', 'other'],
    ['Wildcards', 'other'],
    ['Workflows', 'other'],
    ['Other', 'other'],
    ['SomethingNew', 'other'],
  ])('model.type %s → %s', async (rawType, type) => {
    fake.addModelVersion({ modelId: 1, versionId: 10, type: rawType, baseModel: 'SDXL 1.0' });
    const version = found(await registry().getModelVersion('10'));
    expect(version.type).toBe(type);
    expect(version.rawType).toBe(rawType);
  });

  it.each([
    ['SD 1.5', 'sd1'],
    ['SDXL 1.0', 'sdxl'],
    ['Pony', 'sdxl'],
    ['Illustrious', 'sdxl'],
    ['SD 2.1', 'sd2'],
    ['Flux.1 D', 'flux'],
    ['HiDream', 'hidream'],
    ['Pony V7', 'auraflow'],
    ['Brand New Base', 'unknown'],
  ])('baseModel %s → family %s', async (baseModel, family) => {
    fake.addModelVersion({ modelId: 1, versionId: 11, type: 'TextualInversion', baseModel });
    const version = found(await registry().getModelVersion('11'));
    expect(version.baseModel).toBe(baseModel);
    expect(version.family).toBe(family);
  });

  it('accepts string ids and a version without files', async () => {
    fake.addModelVersion({ modelId: 'abc', versionId: 'v-2', type: 'Checkpoint', baseModel: 'SDXL 1.0', name: 'Alpha' });
    const version = found(await registry().getModelVersion('v-2'));
    expect(version).toMatchObject({ modelId: 'abc', versionId: 'v-2', name: 'Alpha (v1.0)', files: [], file: undefined });
  });

  it('encodes the version id into the path', async () => {
    fake.addModelVersion({ modelId: 1, versionId: 'a/b c?d', type: 'Checkpoint', baseModel: 'SD 1.5' });
    expect(found(await registry().getModelVersion('a/b c?d')).versionId).toBe('a/b c?d');
    expect(fake.calls.versionLookups('a/b c?d')).toBe(1);
    expect(fake.requests[0]?.url).toBe(`${fake.url}/api/v1/model-versions/a%2Fb%20c%3Fd`);
  });
});

describe('createCivitaiRegistry: which file', () => {
  async function chosen(files: FakeModelFile[]) {
    fake.addModelVersion({ modelId: 1, versionId: 20, type: 'TextualInversion', baseModel: 'SD 1.5', files });
    return found(await registry().getModelVersion('20')).file?.name;
  }

  it('prefers a clean SafeTensor over a primary pickle', async () => {
    expect(await chosen([{ name: 'a.pt', primary: true }, { name: 'b.safetensors' }])).toBe('b.safetensors');
  });

  it('prefers the primary one among clean SafeTensors', async () => {
    expect(await chosen([{ name: 'a.safetensors' }, { name: 'b.safetensors', primary: true }])).toBe('b.safetensors');
  });

  it('takes the primary file as it is when no SafeTensor is clean, so a Danger flag surfaces', async () => {
    const name = await chosen([
      { name: 'a.safetensors', primary: true, pickleScanResult: 'Danger' },
      { name: 'b.pt', pickleScanResult: 'Success' },
    ]);
    expect(name).toBe('a.safetensors');
    const { file } = found(await registry().getModelVersion('20'));
    expect(file?.pickleScan).toBe('Danger');
  });

  it('does not count a SafeTensor whose scans are pending as clean', async () => {
    expect(await chosen([{ name: 'a.pt', primary: true }, { name: 'b.safetensors', virusScanResult: 'Pending' }])).toBe('a.pt');
  });

  it('falls back to the first model file when none is primary', async () => {
    expect(await chosen([{ name: 'a.pt', primary: false }, { name: 'b.bin', primary: false }])).toBe('a.pt');
  });

  it('looks only at model files', async () => {
    expect(await chosen([{ name: 'images.zip', type: 'Training Data', primary: true, format: 'Other' }, { name: 'e.pt', primary: false }])).toBe('e.pt');
    expect(await chosen([{ name: 'images.zip', type: 'Training Data', primary: true }])).toBeUndefined();
  });

  it('takes a file typed Negative (a negative embedding) as the model file it is, as Civitai counts it', async () => {
    expect(await chosen([{ name: 'easynegative.safetensors', type: 'Negative', primary: true }])).toBe('easynegative.safetensors');
    expect(await chosen([{ name: 'samples.zip', type: 'Training Data', primary: true }, { name: 'neg.safetensors', type: 'Negative' }])).toBe('neg.safetensors');
  });

  it('never takes a Config, an archive or training data, whatever else is listed', async () => {
    expect(await chosen([{ name: 'settings.json', type: 'Config', primary: true }, { name: 'model.zip', type: 'Model' }, { name: 'data.zip', type: 'Training Data' }])).toBeUndefined();
  });

  it('has no file for a version without files', async () => {
    expect(await chosen([])).toBeUndefined();
  });
});

describe('createCivitaiRegistry: failures', () => {
  it('answers notFound for a 404', async () => {
    expect(await registry().getModelVersion('404404')).toEqual({ kind: 'notFound' });
    expect(fake.calls.versionLookups('404404')).toBe(1);
    expect(delays).toEqual([]);
  });

  it('retries a 503 after the Retry-After it names', async () => {
    fake.addModelVersion({ modelId: 1, versionId: 30, type: 'Checkpoint', baseModel: 'SD 1.5' });
    fake.setBehaviour({ failNext: 2, failStatus: 503, retryAfter: '2' });
    expect(found(await registry().getModelVersion('30')).versionId).toBe('30');
    expect(delays).toEqual([2000, 2000]);
    expect(fake.calls.versionLookups('30')).toBe(3);
  });

  it('retries a 429 with jittered exponential backoff when no Retry-After is sent', async () => {
    fake.addModelVersion({ modelId: 1, versionId: 31, type: 'Checkpoint', baseModel: 'SD 1.5' });
    fake.setBehaviour({ failNext: 2, failStatus: 429 });
    found(await registry({ maxAttempts: 4 }).getModelVersion('31'));
    // random() = 0.5: half of 200 ms, then half of 400 ms.
    expect(delays).toEqual([100, 200]);
    expect(fake.calls.versionLookups('31')).toBe(3);
  });

  it('gives up after maxAttempts with RegistryUnavailableError', async () => {
    fake.setBehaviour({ failNext: 100, failStatus: 502 });
    const error = await lookupError(registry({ maxAttempts: 3 }).getModelVersion('32'));
    expect(error).toMatchObject({ problem: 'unavailable', status: 502 });
    expect(error.message).toMatch(/answered 502 \(3 attempts\)/);
    expect(fake.calls.versionLookups('32')).toBe(3);
    expect(delays).toHaveLength(2);
  });

  it('gives up at once when Retry-After asks for more than it waits', async () => {
    fake.setBehaviour({ failNext: 100, failStatus: 503, retryAfter: '120' });
    const error = await lookupError(registry().getModelVersion('33'));
    expect(error).toMatchObject({ problem: 'unavailable', status: 503 });
    expect(error.message).toMatch(/retry after 120 s, longer than the 30 s/);
    expect(fake.calls.versionLookups('33')).toBe(1);
    expect(delays).toEqual([]);
  });

  it('does not retry a 401, and says to set CIVITAI_TOKEN', async () => {
    fake.setBehaviour({ failNext: 100, failStatus: 401 });
    const error = await lookupError(registry().getModelVersion('34'));
    expect(error).toMatchObject({ problem: 'unauthorized', status: 401 });
    expect(error.message).toMatch(/set CIVITAI_TOKEN/);
    expect(fake.calls.versionLookups('34')).toBe(1);
  });

  it('does not retry a 403 with a token, and says to check it', async () => {
    fake.setBehaviour({ failNext: 100, failStatus: 403 });
    const error = await lookupError(registry({ token: 'secret-token' }).getModelVersion('35'));
    expect(error).toMatchObject({ problem: 'unauthorized', status: 403 });
    expect(error.message).toMatch(/check that CIVITAI_TOKEN/);
    expect(error.message).not.toContain('secret-token');
    expect(fake.calls.versionLookups('35')).toBe(1);
  });

  it('does not retry other 4xx answers', async () => {
    fake.setBehaviour({ failNext: 100, failStatus: 400 });
    const error = await lookupError(registry().getModelVersion('36'));
    expect(error).toMatchObject({ problem: 'rejected', status: 400 });
    expect(fake.calls.versionLookups('36')).toBe(1);
  });

  it('gives up on a registry that never answers', async () => {
    fake.setBehaviour({ hang: true });
    const error = await lookupError(registry({ timeoutMs: 100, maxAttempts: 2 }).getModelVersion('37'));
    expect(error).toMatchObject({ problem: 'unavailable', status: undefined });
    expect(error.message).toMatch(/timed out after 100 ms \(2 attempts\)/);
    expect(fake.calls.versionLookups('37')).toBe(2);
  });

  it('gives up on a registry it cannot connect to', async () => {
    const port = await freePort();
    const error = await lookupError(registry({ baseUrl: `http://127.0.0.1:${port}`, maxAttempts: 2 }).getModelVersion('38'));
    expect(error).toMatchObject({ problem: 'unavailable', status: undefined });
    expect(error.message).toMatch(/connection error \(ECONNREFUSED\) \(2 attempts\)/);
  });

  it('passes the caller abort through without retrying', async () => {
    fake.setBehaviour({ hang: true });
    const controller = new AbortController();
    const reason = new Error('client went away');
    setTimeout(() => controller.abort(reason), 50);
    await expect(registry({ timeoutMs: 5_000 }).getModelVersion('39', controller.signal)).rejects.toBe(reason);
    expect(fake.calls.versionLookups('39')).toBe(1);
    expect(delays).toEqual([]);
  });

  it('stops waiting between attempts when the caller aborts', async () => {
    fake.setBehaviour({ failNext: 100, failStatus: 503, retryAfter: '20' });
    const controller = new AbortController();
    const reason = new Error('client went away');
    const client = createCivitaiRegistry({ baseUrl: fake.url, timeoutMs: 2_000, maxAttempts: 3, dispatcher: agent });
    setTimeout(() => controller.abort(reason), 100);
    await expect(client.getModelVersion('41', controller.signal)).rejects.toBe(reason);
    expect(fake.calls.versionLookups('41')).toBe(1);
  });

  it('sends nothing for a signal that is already aborted', async () => {
    await expect(registry().getModelVersion('40', AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
    expect(fake.calls.versionLookups()).toBe(0);
  });
});

describe('createCivitaiRegistry: unexpected answers', () => {
  const validFile = { name: 'e.pt', downloadUrl: 'http://127.0.0.1/x' };
  it.each([
    ['not JSON', '<html>maintenance</html>', /is not JSON/],
    ['no model.type', JSON.stringify({ modelId: 1, model: { name: 'x' }, files: [validFile] }), /model\.type/],
    ['no files', JSON.stringify({ modelId: 1, model: { type: 'TextualInversion' } }), /files/],
    ['a file without downloadUrl', JSON.stringify({ modelId: 1, model: { type: 'LORA' }, files: [{ name: 'e.pt' }] }), /files\.0\.downloadUrl/],
  ])('%s → RegistryUnavailableError', async (_case, body, message) => {
    const server = await startServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(body);
    });
    try {
      const error = await lookupError(registry({ baseUrl: server.url }).getModelVersion('50'));
      expect(error).toMatchObject({ problem: 'unexpectedAnswer', status: undefined });
      expect(error.message).toMatch(/unexpected answer/);
      expect(error.message).toMatch(message);
      expect(delays).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('stops reading an answer larger than any model version', async () => {
    const server = await startServer((_request, response) => {
      response.end(JSON.stringify({ modelId: 1, model: { type: 'LORA' }, files: [], padding: 'x'.repeat(5 * 1024 * 1024) }));
    });
    try {
      const error = await lookupError(registry({ baseUrl: server.url }).getModelVersion('50'));
      expect(error).toMatchObject({ problem: 'unexpectedAnswer' });
      expect(error.message).toMatch(/is larger than 4194304 bytes/);
    } finally {
      await server.close();
    }
  });

  it('ignores fields it does not know', async () => {
    const body = JSON.stringify({
      id: 50,
      modelId: 5,
      baseModel: 'Pony',
      stats: { downloadCount: 3 },
      model: { type: 'TextualInversion', name: 'x', nsfw: false },
      files: [{ ...validFile, hashes: { AutoV2: 'ABC' }, metadata: { fp: 'fp16' } }],
    });
    const server = await startServer((_request, response) => response.end(body));
    try {
      const version = found(await registry({ baseUrl: server.url }).getModelVersion('50'));
      expect(version).toMatchObject({ family: 'sdxl', type: 'textualInversion', file: { name: 'e.pt', format: 'Other', sha256: undefined, pickleScan: 'Pending' } });
    } finally {
      await server.close();
    }
  });
});

describe('createCivitaiRegistry: connections', () => {
  it('sends the token as a bearer header, and no header without one', async () => {
    fake.addModelVersion({ modelId: 1, versionId: 60, type: 'Checkpoint', baseModel: 'SD 1.5' });
    await registry({ token: 'civitai-token' }).getModelVersion('60');
    await registry().getModelVersion('60');
    expect(fake.requests.map((request) => request.authorization)).toEqual(['Bearer civitai-token', undefined]);
  });

  it('consumes every answer body, so one connection serves many lookups and failures', async () => {
    let answered = 0;
    const server = await startServer((_request, response) => {
      answered += 1;
      const status = answered % 2 === 0 ? 404 : 503;
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: 'x'.repeat(100_000) }));
    });
    try {
      const client = registry({ baseUrl: server.url, maxAttempts: 2 });
      for (let index = 0; index < 5; index += 1) expect(await client.getModelVersion(String(index))).toEqual({ kind: 'notFound' });
      expect(answered).toBe(10);
      // Error bodies above undici's 64 KiB high-water mark: left unread, each would pin its connection, and
      // every one of the 10 requests would need a new one.
      // (undici's pool opens a second connection for the second request, before the first has drained.)
      expect(server.connections()).toBeLessThanOrEqual(2);
    } finally {
      await server.close();
    }
  });
});

describe('retry policy', () => {
  it('reads Retry-After as delta-seconds or an HTTP-date', () => {
    const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
    expect(parseRetryAfterMs('3', now)).toBe(3000);
    expect(parseRetryAfterMs(['7'], now)).toBe(7000);
    expect(parseRetryAfterMs('Wed, 21 Oct 2026 07:28:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfterMs('Wed, 21 Oct 2026 07:27:00 GMT', now)).toBe(0);
    expect(parseRetryAfterMs('soon', now)).toBeUndefined();
    expect(parseRetryAfterMs('-1', now)).toBeUndefined();
    expect(parseRetryAfterMs(undefined, now)).toBeUndefined();
  });

  it('draws backoff from [0, min(5 s, 200 ms · 2^retry))', () => {
    expect(backoffDelayMs(0, () => 0.5)).toBe(100);
    expect(backoffDelayMs(3, () => 0.5)).toBe(800);
    expect(backoffDelayMs(20, () => 0.999)).toBe(4995);
    expect(backoffDelayMs(2, () => 0)).toBe(0);
  });
});
