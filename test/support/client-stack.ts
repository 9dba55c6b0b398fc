import { kohyaSafetensorsFile, randomVectors } from './embedding-fixtures.js';
import { startFakeRegistry, type FakeRegistry } from './fake-registry.js';
import { startFakeWorker, type FakeWorker, type FakeWorkerOptions } from './fake-worker.js';
import { freePort } from './free-port.js';
import { startServerProcess, waitUntilReady, type ServerProcess } from './server-process.js';

/** The models the client tests use: an SD 1.5 base, EasyNegative (SD 1.5), and FLUX.1 dev, all under their real AIRs. */
export const SD15 = 'civitai:4384@128713';
export const FLUX = 'runware:101@1';
export const EASY_NEGATIVE = 'civitai:7808@9208';
export const CLIENT_API_KEY = 'client-test-key-0123456789';

/**
 * What the published Runware clients are pointed at in the tests: real gateway processes (started as
 * `npm start` starts them), a Civitai-compatible registry serving EasyNegative as an SD 1.5 safetensors
 * embedding, and a fake GPU worker on loopback. Every part is a real server; nothing is mocked.
 */
export interface ClientStack {
  readonly registry: FakeRegistry;
  readonly worker: FakeWorker;
  readonly gateways: readonly { readonly port: number; readonly process: ServerProcess }[];
  close(): Promise<void>;
}

export async function startClientStack(options: { replicas?: number; env?: Record<string, string>; worker?: FakeWorkerOptions } = {}): Promise<ClientStack> {
  const registry = await startFakeRegistry();
  registry.addModelVersion({
    modelId: 7808,
    versionId: 9208,
    name: 'EasyNegative',
    type: 'TextualInversion',
    baseModel: 'SD 1.5',
    files: [{ name: 'easynegative.safetensors', bytes: kohyaSafetensorsFile(randomVectors(8, 768, 1), 8, 768) }],
  });
  const worker = await startFakeWorker({ models: [{ air: SD15, family: 'sd1', loaded: true }], ...options.worker });
  const gateways: { port: number; process: ServerProcess }[] = [];
  for (let index = 0; index < (options.replicas ?? 1); index++) {
    const port = await freePort();
    const process = startServerProcess({
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      API_KEYS: CLIENT_API_KEY,
      CIVITAI_BASE_URL: registry.url,
      WORKER_URLS: worker.url,
      WORKER_HEALTH_INTERVAL_MS: '200',
      PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
      ...options.env,
    });
    gateways.push({ port, process });
  }
  await Promise.all(gateways.map(({ port }) => waitUntilReady(port)));
  // The worker is polled for health right after start; wait until a gateway has seen it.
  await waitForWorker(gateways[0]!.port);
  return {
    registry,
    worker,
    gateways,
    async close() {
      await Promise.all(gateways.map(({ process }) => process.stop()));
      await Promise.all([worker.close(), registry.close()]);
    },
  };
}

async function waitForWorker(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  const probe = JSON.stringify([{ taskType: 'imageInference', taskUUID: crypto.randomUUID(), positivePrompt: 'probe', model: SD15, width: 128, height: 128, outputType: 'base64Data' }]);
  while (Date.now() < deadline) {
    const response = await fetch(`http://127.0.0.1:${port}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_API_KEY}` }, body: probe });
    await response.arrayBuffer();
    if (response.status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the gateway never saw its worker');
}
