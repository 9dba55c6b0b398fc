/**
 * Warm-path cost of resolving embeddings, measured through a real gateway process on loopback: the same
 * request with three embeddings per task (all already resolved and cached) and without embeddings, side by
 * side in one run, alternating rounds so drift hits both alike. Prints per-task cost and the ratio.
 *
 *   npm run bench:resolution [-- --requests 2000 --concurrency 8 --tasks 10]
 *
 * Needs redis-server (scripts/install-test-dependencies.sh). Loopback only; bounded; stops by itself.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { kohyaSafetensorsFile, randomVectors } from '../test/support/embedding-fixtures.js';
import { startFakeRegistry } from '../test/support/fake-registry.js';
import { freePort } from '../test/support/free-port.js';
import { startRedisServer } from '../test/support/redis-server.js';
import { startServerProcess, waitUntilReady } from '../test/support/server-process.js';
import { progressBar, writeLatencyChart } from './report.js';

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    tasks: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '4' },
  },
});
const requestsPerVariant = Number(args.requests);
const concurrency = Number(args.concurrency);
const tasksPerRequest = Number(args.tasks);
const rounds = Number(args.rounds);

const embeddings = [
  { model: 'civitai:7001@8001', weight: 0.8 },
  { model: 'civitai:7002@8002', weight: -1 },
  { model: 'civitai:7003@8003', weight: 1.2 },
];

function body(withEmbeddings: boolean): string {
  return JSON.stringify(
    Array.from({ length: tasksPerRequest }, () => ({
      taskType: 'imageInference',
      taskUUID: randomUUID(),
      positivePrompt: 'a lighthouse on a cliff at dusk, oil painting',
      model: 'civitai:4384@128713',
      width: 512,
      height: 512,
      ...(withEmbeddings && { embeddings }),
    })),
  );
}

async function run(pool: Pool, withEmbeddings: boolean, count: number): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const payload = body(withEmbeddings);
      const started = process.hrtime.bigint();
      const response = await pool.request({ path: '/v1/tasks', method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
      const text = await response.body.text();
      latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
      // Every task must have passed validation: without workers, each is a noAvailableWorker.
      if (response.statusCode !== 503 || !text.includes('noAvailableWorker') || text.includes('"code":"unknownModel"')) {
        throw new Error(`unexpected answer ${response.statusCode}: ${text.slice(0, 300)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return latencies;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  const [registry, redis] = await Promise.all([startFakeRegistry(), startRedisServer()]);
  embeddings.forEach((entry, index) => {
    const [modelId, versionId] = entry.model.replace('civitai:', '').split('@');
    registry.addModelVersion({ modelId: modelId ?? '', versionId: versionId ?? '', type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'e.safetensors', bytes: kohyaSafetensorsFile(randomVectors(4, 768, index), 4, 768) }] });
  });
  const port = await freePort();
  const gateway = startServerProcess({ PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', REDIS_URL: redis.url, CIVITAI_BASE_URL: registry.url });
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: concurrency });
  try {
    await waitUntilReady(port);
    await run(pool, true, 50); // resolves and caches the embeddings; also warms the JIT
    await run(pool, false, 50);
    const lookupsAfterWarmup = registry.calls.versionLookups();

    const results = { with: [] as number[], without: [] as number[] };
    let seconds = { with: 0, without: 0 };
    const progress = progressBar('warm-path resolution', rounds * 2);
    let measured = 0;
    for (let round = 0; round < rounds; round++) {
      for (const variant of round % 2 === 0 ? (['without', 'with'] as const) : (['with', 'without'] as const)) {
        const started = performance.now();
        results[variant].push(...(await run(pool, variant === 'with', Math.ceil(requestsPerVariant / rounds))));
        seconds = { ...seconds, [variant]: seconds[variant] + (performance.now() - started) / 1000 };
        progress.advance(++measured);
      }
    }
    progress.finish();
    if (registry.calls.versionLookups() !== lookupsAfterWarmup) throw new Error('the warm path called the registry');

    const rows = (['without', 'with'] as const).map((variant) => {
      const sorted = [...results[variant]].sort((a, b) => a - b);
      const mean = sorted.reduce((sum, value) => sum + value, 0) / sorted.length;
      const throughput = sorted.length / seconds[variant];
      return { variant, throughput, p50: percentile(sorted, 50), p99: percentile(sorted, 99), perTaskMicros: (1e6 / (throughput * tasksPerRequest)), mean };
    });
    const [without, withEmbeddings] = rows as [(typeof rows)[number], (typeof rows)[number]];
    const chart = writeLatencyChart('resolution-warm-path', `warm-path resolution: ${tasksPerRequest} tasks/request, ${embeddings.length} embeddings/task`, [
      { label: 'without embeddings', latenciesMs: results.without },
      { label: `with ${embeddings.length} embeddings (warm)`, latenciesMs: results.with },
    ]);
    process.stdout.write(
      [
        `warm-path resolution: ${tasksPerRequest} tasks/request, ${embeddings.length} embeddings/task, concurrency ${concurrency}, ${requestsPerVariant} requests/variant, ${rounds} alternating rounds`,
        `${'variant'.padEnd(28)}${'req/s'.padStart(10)}${'p50 ms'.padStart(10)}${'p99 ms'.padStart(10)}${'µs per task'.padStart(14)}`,
        ...rows.map((row) =>
          `${(row.variant === 'with' ? `with ${embeddings.length} embeddings (warm)` : 'without embeddings').padEnd(28)}${row.throughput.toFixed(0).padStart(10)}${row.p50.toFixed(2).padStart(10)}${row.p99.toFixed(2).padStart(10)}${row.perTaskMicros.toFixed(1).padStart(14)}`,
        ),
        `warm resolution cost per task: ${(withEmbeddings.perTaskMicros - without.perTaskMicros).toFixed(1)} µs (${(withEmbeddings.perTaskMicros / without.perTaskMicros).toFixed(2)}× the task without embeddings; throughput ratio ${(withEmbeddings.throughput / without.throughput).toFixed(2)})`,
        `registry calls during measurement: ${registry.calls.versionLookups() - lookupsAfterWarmup}`,
        `latency chart: ${chart}`,
        '',
      ].join('\n'),
    );
  } finally {
    await pool.close();
    await gateway.stop();
    await Promise.all([registry.close(), redis.stop()]);
  }
}

await main();
