/**
 * Fleet scheduling, simulated (issue 15): fake GPU workers that charge a model swap and a cost per step, and
 * draw queued jobs of one batch key in one pass (test/support/fake-worker.ts, `gpu`), under a Zipf mix of
 * models and embeddings and a mix of sizes, fed the same tasks twice in one run: through clipgate (its
 * placement: the worker that has the model loaded, then one holding jobs the task can batch with once none is
 * idle, then the least loaded) and by plain round-robin over the same workers, what an nginx upstream in front
 * of them would do. Prints GPU-busy fraction (and the part of it spent swapping models), images per
 * GPU-second, model swaps, jobs that joined a batch and p50/p95 latency of both.
 *
 *   npm run bench:fleet [-- --workers 4 --models 8 --tasks 600 --concurrency 12 --step-ms 5 --swap-ms 400 --loaded 2 --zipf 1.1 --batch 4 --batch-marginal 0.6]
 *
 * `--batch 1` turns batching off on both sides. `--batch-marginal`: what each further image of a pass costs
 * beside the first (0.6 is about SD 1.5 at 512² on a data-centre GPU; 1 means batching buys nothing).
 * Loopback only, in this process (the costs are timers, not CPU); bounded; stops by itself.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { loadConfig } from '../src/config.js';
import type { ModelRecord } from '../src/contracts/model-record.js';
import type { JobRequest } from '../src/dispatch/worker-protocol.js';
import { createGateway } from '../src/gateway.js';
import { kohyaSafetensorsFile, randomVectors } from '../test/support/embedding-fixtures.js';
import { startFakeRegistry } from '../test/support/fake-registry.js';
import { startFakeWorker, type FakeWorker } from '../test/support/fake-worker.js';
import { seededRandom } from '../test/support/seeded-random.js';
import { closedLoop, percentile } from './load.js';
import { progressBar } from './report.js';

const { values: args } = parseArgs({
  options: {
    workers: { type: 'string', default: '4' },
    models: { type: 'string', default: '8' },
    embeddings: { type: 'string', default: '16' },
    tasks: { type: 'string', default: '600' },
    concurrency: { type: 'string', default: '12' },
    'step-ms': { type: 'string', default: '5' },
    'swap-ms': { type: 'string', default: '400' },
    loaded: { type: 'string', default: '2' },
    steps: { type: 'string', default: '20' },
    zipf: { type: 'string', default: '1.1' },
    seed: { type: 'string', default: '15' },
    batch: { type: 'string', default: '4' },
    'batch-marginal': { type: 'string', default: '0.6' },
  },
});

const numbers = Object.fromEntries(Object.entries(args).map(([name, value]) => [name, Number(value)])) as Record<keyof typeof args, number>;
for (const [name, value] of Object.entries(numbers)) {
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
}
const deadline = setTimeout(() => {
  process.stderr.write('fleet simulation: still running after 10 minutes; giving up\n');
  process.exit(1);
}, 10 * 60_000);
deadline.unref();

const models: ModelRecord[] = Array.from({ length: numbers.models }, (_, index) => ({
  air: `fleet:checkpoint-${index}@1`,
  name: `Checkpoint ${index}`,
  type: 'checkpoint',
  family: 'sd1',
  source: 'operator',
}));
// Embeddings come from a registry on loopback (clipgate resolves and inspects each once); the simulated GPU
// charges nothing for them, as a real one charges little beside a model swap.
const embeddingAirs = Array.from({ length: numbers.embeddings }, (_, index) => `civitai:${70_000 + index}@${80_000 + index}`);
const registry = await startFakeRegistry();
embeddingAirs.forEach((_air, index) =>
  registry.addModelVersion({ modelId: 70_000 + index, versionId: 80_000 + index, type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: `e${index}.safetensors`, bytes: kohyaSafetensorsFile(randomVectors(2, 768, index), 2, 768) }] }),
);

/** Ranks 0..n-1 drawn with weight 1/(rank+1)^s: a few models take most of the traffic, as on a real platform. */
function zipf(n: number, s: number, random: () => number): () => number {
  const weights = Array.from({ length: n }, (_, rank) => 1 / (rank + 1) ** s);
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  return () => {
    let draw = random() * total;
    for (let rank = 0; rank < n; rank++) {
      draw -= weights[rank]!;
      if (draw <= 0) return rank;
    }
    return n - 1;
  };
}

interface Workload {
  readonly model: string;
  readonly embedding: string | undefined;
  readonly width: number;
  readonly height: number;
}

/** Square most of the time, portrait or landscape otherwise: sizes split batches as they do in production. */
const sizes = [
  [512, 512],
  [512, 512],
  [512, 768],
  [768, 512],
] as const;

function workload(): Workload[] {
  const random = seededRandom(numbers.seed);
  const model = zipf(models.length, numbers.zipf, random);
  const embedding = zipf(embeddingAirs.length, numbers.zipf, random);
  return Array.from({ length: numbers.tasks }, () => {
    const [width, height] = sizes[Math.floor(random() * sizes.length)]!;
    return { model: models[model()]!.air, embedding: random() < 0.5 ? embeddingAirs[embedding()] : undefined, width, height };
  });
}

async function startFleet(): Promise<FakeWorker[]> {
  return Promise.all(
    Array.from({ length: numbers.workers }, () =>
      startFakeWorker({
        maxConcurrency: 4,
        models: models.map((model) => ({ air: model.air, family: 'sd1', loaded: false })),
        gpu: { stepMs: numbers['step-ms'], swapMs: numbers['swap-ms'], maxLoadedModels: numbers.loaded, batchSize: numbers.batch, batchMarginal: numbers['batch-marginal'] },
      }),
    ),
  );
}

interface Outcome {
  readonly label: string;
  readonly seconds: number;
  readonly latenciesMs: readonly number[];
  readonly busyMs: number;
  readonly swaps: number;
  readonly images: number;
  readonly batched: number;
}

function outcome(label: string, run: { latenciesMs: number[]; seconds: number }, fleet: readonly FakeWorker[]): Outcome {
  return {
    label,
    seconds: run.seconds,
    latenciesMs: run.latenciesMs,
    busyMs: fleet.reduce((sum, worker) => sum + worker.stats.gpuBusyMs(), 0),
    swaps: fleet.reduce((sum, worker) => sum + worker.stats.swaps(), 0),
    images: fleet.reduce((sum, worker) => sum + worker.stats.completed(), 0),
    batched: fleet.reduce((sum, worker) => sum + worker.stats.batchedJobs(), 0),
  };
}

async function throughClipgate(tasks: readonly Workload[]): Promise<Outcome> {
  const fleet = await startFleet();
  const config = loadConfig({
    CIVITAI_BASE_URL: registry.url,
    WORKER_URLS: fleet.map((worker) => worker.url).join(','),
    WORKER_HEALTH_INTERVAL_MS: '200',
    QUEUE_MAX: '10000',
    QUEUE_WAIT_MS: '120000',
    TASK_TIMEOUT_MS: '300000',
    LOG_LEVEL: 'silent',
    METRICS_ENABLED: 'false',
  });
  const quiet = { info: () => undefined, warn: () => undefined };
  const gateway = await createGateway(config, models, quiet);
  await gateway.app.listen({ port: 0, host: '127.0.0.1' });
  const pool = new Pool(`http://127.0.0.1:${(gateway.app.server.address() as AddressInfo).port}`, { connections: numbers.concurrency });
  try {
    while (!gateway.dispatch.pool?.workers.every((worker) => worker.healthy)) await new Promise((resolve) => setTimeout(resolve, 50));
    let next = 0;
    const run = await closedLoop(tasks.length, numbers.concurrency, async () => {
      const { model, embedding, width, height } = tasks[next++]!;
      const task = { taskType: 'imageInference', taskUUID: randomUUID(), model, positivePrompt: 'a lighthouse', width, height, steps: numbers.steps, ...(embedding && { embeddings: [{ model: embedding, weight: 1 }] }) };
      const response = await pool.request({ path: '/v1/tasks', method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([task]) });
      const text = await response.body.text();
      if (response.statusCode !== 200) throw new Error(`clipgate answered ${response.statusCode}: ${text.slice(0, 300)}`);
    });
    return outcome('clipgate (affinity, batches, load)', run, fleet);
  } finally {
    await pool.close();
    await gateway.close();
    await Promise.all(fleet.map((worker) => worker.close()));
  }
}

async function roundRobin(tasks: readonly Workload[]): Promise<Outcome> {
  const fleet = await startFleet();
  const pools = fleet.map((worker) => new Pool(worker.url, { connections: numbers.concurrency }));
  try {
    let next = 0;
    let turn = 0;
    const run = await closedLoop(tasks.length, numbers.concurrency, async () => {
      const { model, width, height } = tasks[next++]!;
      // The job clipgate would send (an embedding changes nothing in the simulated cost, nor what batches).
      const job: JobRequest = { jobId: randomUUID(), model: { air: model, family: 'sd1' }, positivePrompt: 'a lighthouse', negativePrompt: '', width, height, steps: numbers.steps, cfgScale: 7, seed: '1', scheduler: 'Default', clipSkip: 0, numberResults: 1, outputFormat: 'PNG', embeddings: [] };
      // As an upstream does: the next worker in turn, and on a refusal (busy) the one after it.
      for (let tries = 0; ; tries++) {
        const pool = pools[turn++ % pools.length]!;
        const response = await pool.request({ path: '/v1/jobs', method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(job) });
        const text = await response.body.text();
        if (response.statusCode === 200 && text.includes('"result"')) return;
        if (response.statusCode !== 429 || tries > 100) throw new Error(`worker answered ${response.statusCode}: ${text.slice(0, 300)}`);
      }
    });
    return outcome('round-robin (an nginx upstream)', run, fleet);
  } finally {
    await Promise.all(pools.map((pool) => pool.close()));
    await Promise.all(fleet.map((worker) => worker.close()));
  }
}

const tasks = workload();
const progress = progressBar('fleet simulation', 2);
const outcomes = [await throughClipgate(tasks)];
progress.advance(1);
outcomes.push(await roundRobin(tasks));
progress.advance(2);
progress.finish();

await registry.close();
const lines = [
  `fleet simulation: ${numbers.workers} workers, ${numbers.batch > 1 ? `batches of up to ${numbers.batch} images (each beyond the first ${numbers['batch-marginal']} of a pass)` : 'one job at a time'} each, ${numbers.steps} steps × ${numbers['step-ms']} ms, a model swap ${numbers['swap-ms']} ms, ${numbers.loaded} models loaded at most; ${numbers.tasks} tasks over ${numbers.models} models and ${numbers.embeddings} embeddings (Zipf s=${numbers.zipf}), ${numbers.concurrency} in flight`,
  `${'placement'.padEnd(36)}${'GPU busy'.padStart(9)}${'swapping'.padStart(10)}${'img/GPU-s'.padStart(11)}${'swaps'.padStart(7)}${'batched'.padStart(9)}${'p50 ms'.padStart(9)}${'p95 ms'.padStart(9)}${'wall s'.padStart(8)}`,
  ...outcomes.map((result) => {
    const sorted = [...result.latenciesMs].sort((a, b) => a - b);
    const gpuSeconds = numbers.workers * result.seconds;
    const swapping = (100 * result.swaps * numbers['swap-ms']) / 1000 / gpuSeconds;
    return `${result.label.padEnd(36)}${`${((100 * result.busyMs) / 1000 / gpuSeconds).toFixed(0)}%`.padStart(9)}${`${swapping.toFixed(0)}%`.padStart(10)}${(result.images / gpuSeconds).toFixed(2).padStart(11)}${String(result.swaps).padStart(7)}${String(result.batched).padStart(9)}${percentile(sorted, 50).toFixed(0).padStart(9)}${percentile(sorted, 95).toFixed(0).padStart(9)}${result.seconds.toFixed(1).padStart(8)}`;
  }),
];
const [ours, theirs] = outcomes as [Outcome, Outcome];
lines.push(`images per GPU-second, clipgate/round-robin: ${(ours.images / ours.seconds / (theirs.images / theirs.seconds)).toFixed(2)}; swaps ${ours.swaps} against ${theirs.swaps}; jobs batched ${ours.batched} against ${theirs.batched}`);
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(0);
