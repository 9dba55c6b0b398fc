import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClipgateClient, type ClipgateClient } from '../../clients/typescript/src/index.js';
import { CLIENT_API_KEY, EASY_NEGATIVE, FLUX, SD15, startClientStack, type ClientStack } from '../support/client-stack.js';
import { until } from '../support/gateway.js';

/** The generated TypeScript client (clients/typescript), end to end against a gateway process. */

const root = fileURLToPath(new URL('../..', import.meta.url));
let stack: ClientStack;
let clipgate: ClipgateClient;

beforeAll(async () => {
  stack = await startClientStack();
  clipgate = createClipgateClient({ baseUrl: `http://127.0.0.1:${stack.gateways[0]!.port}`, apiKey: CLIENT_API_KEY });
}, 60_000);

afterAll(async () => {
  await stack.close();
});

describe('the generated TypeScript client', () => {
  it('is generated from the committed OpenAPI document exactly (run `npm run openapi` after a schema change)', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'clipgate-client-'));
    try {
      const fresh = join(directory, 'schema.d.ts');
      await new Promise<void>((resolve, reject) =>
        execFile(join(root, 'node_modules/.bin/openapi-typescript'), [join(root, 'openapi/clipgate.json'), '--default-non-nullable=false', '-o', fresh], { cwd: root }, (error) => (error ? reject(error) : resolve())),
      );
      expect(readFileSync(join(root, 'clients/typescript/src/schema.d.ts'), 'utf8')).toBe(readFileSync(fresh, 'utf8'));
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  }, 60_000);

  it('generates an image for an SD 1.5 task with a negative embedding', async () => {
    const taskUUID = randomUUID();
    const { status, body } = await clipgate.runTasks([
      { taskType: 'imageInference', taskUUID, model: SD15, positivePrompt: 'a lighthouse at dusk', width: 512, height: 512, outputType: 'URL', embeddings: [{ model: EASY_NEGATIVE, weight: -1 }] },
    ]);
    expect(status).toBe(200);
    expect(body.data?.[0]).toMatchObject({ taskType: 'imageInference', taskUUID, imageURL: expect.stringMatching(/\/v1\/images\//) });
  });

  it("gives clipgate's documented errors as a typed body with the status, not an exception", async () => {
    const { status, body } = await clipgate.runTasks([{ taskType: 'imageInference', taskUUID: randomUUID(), model: FLUX, positivePrompt: 'a lighthouse', width: 1024, height: 1024, embeddings: [{ model: EASY_NEGATIVE, weight: 1 }] }]);
    expect(status).toBe(400);
    expect(body.errors?.[0]?.code).toBe('unsupportedEmbeddingArchitecture');
    expect(body.error?.code).toBe('unsupportedEmbeddingArchitecture');
  });

  it('runs an async task and fetches it with getTask; reaches any other route through client', async () => {
    const taskUUID = randomUUID();
    const ack = await clipgate.runTasks([{ taskType: 'imageInference', taskUUID, deliveryMethod: 'async', model: SD15, positivePrompt: 'a harbour', width: 512, height: 512 }]);
    expect(ack.body.data).toEqual([{ taskType: 'imageInference', taskUUID }]);
    // A result of a finished task carries status "success" (getResponse's shape).
    await until(async () => {
      const first = (await clipgate.getTask(taskUUID)).body.data?.[0];
      return first !== undefined && 'status' in first && first.status === 'success';
    }, 10_000);
    expect((await clipgate.getTask(randomUUID())).status).toBe(404);
    const { data: model } = await clipgate.client.GET('/v1/models/{air}', { params: { path: { air: EASY_NEGATIVE } } });
    expect(model).toMatchObject({ air: EASY_NEGATIVE, type: 'textualInversion', family: 'sd1' });
  });
});
