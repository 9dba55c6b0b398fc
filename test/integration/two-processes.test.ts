import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kohyaSafetensorsFile, randomVectors } from '../support/embedding-fixtures.js';
import { startFakeRegistry, type FakeRegistry } from '../support/fake-registry.js';
import { freePort } from '../support/free-port.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { startServerProcess, waitUntilReady, type ServerProcess } from '../support/server-process.js';

let registry: FakeRegistry;
let redis: RedisServer;
let admin: Redis;
const servers: { process: ServerProcess; pool: Pool }[] = [];

beforeAll(async () => {
  [registry, redis] = await Promise.all([startFakeRegistry(), startRedisServer()]);
  admin = new Redis(redis.url);
  for (let index = 0; index < 2; index++) {
    const port = await freePort();
    const process = startServerProcess({
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      REDIS_URL: redis.url,
      CIVITAI_BASE_URL: registry.url,
    });
    await waitUntilReady(port);
    servers.push({ process, pool: new Pool(`http://127.0.0.1:${port}`, { connections: 50 }) });
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(servers.map(async ({ process, pool }) => Promise.all([pool.close(), process.stop()])));
  admin.disconnect();
  await Promise.all([registry.close(), redis.stop()]);
});

async function post(pool: Pool, embedding: string): Promise<{ status: number; code: string | undefined }> {
  const response = await pool.request({
    path: '/v1/tasks',
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify([
      { taskType: 'imageInference', taskUUID: randomUUID(), positivePrompt: 'a lighthouse', model: 'civitai:4384@128713', width: 512, height: 512, embeddings: [{ model: embedding, weight: -1 }] },
    ]),
  });
  const body = (await response.body.json()) as { errors: { code: string }[] };
  return { status: response.statusCode, code: body.errors[0]?.code };
}

/** SETs Redis has run: a warm resolution reads only, so these are the task ledger's writes. */
/** Calls of each command so far (commands a script runs count too). */
async function commandCalls(): Promise<Record<string, number>> {
  const stats = await admin.info('commandstats');
  return Object.fromEntries([...stats.matchAll(/cmdstat_(\w+):calls=(\d+)/g)].map((match) => [match[1]!, Number(match[2])]));
}

async function commandsProcessed(): Promise<number> {
  return Number(/total_commands_processed:(\d+)/.exec(await admin.info('stats'))?.[1]);
}

describe('two gateway processes sharing one Redis', () => {
  it('make exactly one registry call and one download for 200 concurrent requests for a cold embedding', async () => {
    registry.addModelVersion({ modelId: 7808, versionId: 9208, type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'easynegative.safetensors', bytes: kohyaSafetensorsFile(randomVectors(8, 768, 1), 8, 768) }] });
    registry.setBehaviour({ latencyMs: 100 });
    const answers = await Promise.all(Array.from({ length: 200 }, (_, index) => post(servers[index % 2]!.pool, 'civitai:7808@9208')));
    registry.setBehaviour({ latencyMs: 0 });
    expect(answers.filter((answer) => answer.status === 503 && answer.code === 'noAvailableWorker')).toHaveLength(200);
    expect(registry.calls.versionLookups('9208')).toBe(1);
    expect(registry.calls.downloads()).toBe(1);
  });

  it('answer a warm request with no registry call and at most one Redis round trip to resolve it; the task ledger adds a SET and a script', async () => {
    const lookups = registry.calls.versionLookups();
    const before = await commandsProcessed();
    const callsBefore = await commandCalls();
    const answer = await post(servers[1]!.pool, 'civitai:7808@9208');
    const calls = await commandCalls();
    const delta = (command: string) => (calls[command] ?? 0) - (callsBefore[command] ?? 0);
    // The ledger: its claim (one SET NX GET) before dispatch, its final record (a script: GET, SET) after.
    const ledgerScripts = delta('evalsha') + delta('eval');
    const ledgerCommands = ledgerScripts + delta('get') + delta('set') + delta('del');
    const resolutionCommands = (await commandsProcessed()) - before - 3 - ledgerCommands; // minus the three INFOs that measure
    expect(answer.code).toBe('noAvailableWorker');
    expect(registry.calls.versionLookups()).toBe(lookups);
    expect(resolutionCommands).toBeLessThanOrEqual(1);
    expect(ledgerScripts).toBe(1);
    expect(delta('set')).toBe(2);
    expect(delta('get') + delta('del')).toBe(1);
  });
});
