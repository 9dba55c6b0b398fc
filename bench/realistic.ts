/**
 * The request users would run (issue 15), clipgate beside a bare pass-through in one run: Redis on, every task
 * with a warm embedding (negative, EasyNegative's way) and a warm LoRA, the task ledger on the path (it is on
 * every sync task), LOG_LEVEL=info, URL and base64 outputs, over REST and over WebSocket, at 1, 10 and 50 tasks
 * per request (or frame). The pass-through (bench/passthrough-proxy.ts) sends the very job clipgate sends for
 * such a task (captured from the fake worker during the warm-up), one per task, to the same instant fake
 * worker; for several tasks it parses the array and sends each at once.
 *
 *   npm run bench:realistic [-- --tasks 6000 --concurrency 50 --rounds 4 --warmup 1000 --sizes 1,10,50 --transports REST,WebSocket
 *                               --outputs URL,base64Data --log-level info --cpu-prof DIR --baseline bare|fastify --front clipgate|ledger
 *                               --worker-concurrency 64]
 *
 * Prints, per transport, output and size: tasks/s of both, the ratio, p50/p99 per request of both and the p99
 * overhead, and CPU µs per task of clipgate, the proxy, Redis, the worker and this generator. Targets (issue 15):
 * ratio ≥ 0.9 and p99 overhead ≤ 1 ms at 50 connections. Loopback only; bounded; stops by itself.
 */
import { randomUUID } from 'node:crypto';
import { availableParallelism, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { kohyaSafetensorsFile, randomVectors } from '../test/support/embedding-fixtures.js';
import { startFakeRegistry } from '../test/support/fake-registry.js';
import { startFakeWorker } from '../test/support/fake-worker.js';
import { freePort } from '../test/support/free-port.js';
import { loraFile } from '../test/support/lora-fixtures.js';
import { startRedisServer } from '../test/support/redis-server.js';
import { waitUntilReady } from '../test/support/server-process.js';
import { startGatewayAsNpmStartDoes } from './gateway-process.js';
import { announceListening, closedLoop, exitWithParent, processCpuSeconds, startHelperProcess, startWorkerAndProxy, summarise, superviseChildren, type LoadRun } from './load.js';
import { progressBar, writeLatencyChart } from './report.js';
import { SocketPool } from './socket-pool.js';

const { values: args } = parseArgs({
  options: {
    /** Tasks per variant and configuration. */
    tasks: { type: 'string', default: '6000' },
    concurrency: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '1000' },
    sizes: { type: 'string', default: '1,10,50' },
    transports: { type: 'string', default: 'REST,WebSocket' },
    outputs: { type: 'string', default: 'URL,base64Data' },
    /** The gateway runs under `node --cpu-prof`, writing its profile into this directory when it exits. */
    'cpu-prof': { type: 'string' },
    'log-level': { type: 'string', default: 'info' },
    /** `bare`: bench/passthrough-proxy.ts (node:http). `fastify`: bench/fastify-passthrough.ts, the framework's floor (REST only). */
    baseline: { type: 'string', default: 'bare' },
    /**
     * What is measured against the baseline. `clipgate`: the gateway. `ledger`: bench/ledger-passthrough.ts, the
     * bare pass-through plus the ledger's two Redis writes per task, the ceiling of any gateway keeping that
     * ledger (REST and base64Data only; clipgate still starts, to capture the job both send).
     */
    front: { type: 'string', default: 'clipgate' },
    /**
     * The fake worker's advertised maxConcurrency: 64, the pass-throughs' connection cap, so both sides hold at
     * most 64 jobs at the worker and queue the rest (clipgate in its admission queue, the pass-through in
     * undici's). A GPU worker advertises single digits; 100000 makes clipgate open a socket per task in flight.
     */
    'worker-concurrency': { type: 'string', default: '64' },
    'serve-fake-worker': { type: 'boolean', default: false },
  },
});

const runDeadlineMs = 15 * 60_000;
const requestTimeoutMs = 30_000;
const API_KEY = 'bench-realistic-key-0123456789';
const SD15 = 'civitai:4384@128713';
const EMBEDDING = 'civitai:7808@9208';
const LORA = 'civitai:8801@9901';
const outputs = { URL: '"imageURL"', base64Data: '"imageBase64Data"' } as const;
type Output = keyof typeof outputs;
type Transport = 'REST' | 'WebSocket';
const baselines: Record<string, string> = { bare: 'bench/passthrough-proxy.ts', fastify: 'bench/fastify-passthrough.ts' };
const baseline = args.baseline;
if (!(baseline in baselines)) throw new Error(`--baseline must be one of ${Object.keys(baselines).join(', ')}`);
const front = args.front;
if (front !== 'clipgate' && front !== 'ledger') throw new Error('--front must be clipgate or ledger');
if (front === 'ledger' && (args.transports !== 'REST' || args.outputs !== 'base64Data')) throw new Error('--front ledger measures REST and answers inline only (it stores no image files): pass --transports REST --outputs base64Data');

/** The worker's own process: answers at once, takes LoRAs, and says what the first job it got looked like. */
async function serveFakeWorker(): Promise<void> {
  const worker = await startFakeWorker({ maxConcurrency: Number(args['worker-concurrency']), capabilities: ['loras'] });
  worker.setBehaviour({ acceptDelayMs: 0, latencyMs: 0, progressEveryMs: 0 });
  announceListening(worker.url);
  const reporter = setInterval(() => {
    const job = worker.receivedJobs[0];
    if (!job) return;
    process.stdout.write(`JOB ${JSON.stringify(job)}\n`);
    clearInterval(reporter);
  }, 50);
  exitWithParent();
}

function task(output: Output): Record<string, unknown> {
  return {
    taskType: 'imageInference',
    taskUUID: randomUUID(),
    model: SD15,
    positivePrompt: 'a lighthouse on a cliff at dusk, oil painting',
    width: 512,
    height: 512,
    outputType: output,
    outputFormat: 'PNG',
    embeddings: [{ model: EMBEDDING, weight: -1 }],
    lora: [{ model: LORA, weight: 0.8 }],
  };
}

function count(text: string, needle: string): number {
  let found = 0;
  for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + needle.length)) found++;
  return found;
}

async function main(): Promise<void> {
  const tasksPerVariant = Number(args.tasks);
  const concurrency = Number(args.concurrency);
  const rounds = Number(args.rounds);
  const warmup = Number(args.warmup);
  const workerConcurrency = Number(args['worker-concurrency']);
  const sizes = args.sizes.split(',').map(Number);
  for (const [name, value] of Object.entries({ tasks: tasksPerVariant, concurrency, rounds, warmup, 'worker-concurrency': workerConcurrency, ...Object.fromEntries(sizes.map((size, index) => [`sizes[${index}]`, size])) })) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  }
  const loadBefore = loadavg()[0] ?? NaN;
  const children = superviseChildren('realistic', runDeadlineMs);

  const [registry, redis] = await Promise.all([startFakeRegistry(), startRedisServer()]);
  registry.addModelVersion({ modelId: 7808, versionId: 9208, name: 'EasyNegative', type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'easynegative.safetensors', bytes: kohyaSafetensorsFile(randomVectors(8, 768, 1), 8, 768) }] });
  registry.addModelVersion({ modelId: 8801, versionId: 9901, name: 'Style', type: 'LORA', baseModel: 'SD 1.5', files: [{ name: 'style.safetensors', bytes: loraFile('sd1', 'kohya') }] });
  const { worker, proxy } = await startWorkerAndProxy('bench/realistic.ts', children, baselines[baseline], ['--worker-concurrency', args['worker-concurrency']]);
  const port = await freePort();
  const gateway = await startGatewayAsNpmStartDoes(
    {
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: args['log-level'],
      API_KEYS: API_KEY,
      REDIS_URL: redis.url,
      WORKER_URLS: worker.url,
      CIVITAI_BASE_URL: registry.url,
      QUEUE_MAX: '100000',
      MAX_TASKS_PER_REQUEST: String(Math.max(100, ...sizes)),
      WORKER_HEALTH_INTERVAL_MS: '500',
      WS_MAX_SOCKETS_PER_KEY: String(concurrency),
      WS_MAX_TASKS_IN_FLIGHT: String(Math.max(100, ...sizes)),
    },
    { outputTailChars: 16_384, ...(args['cpu-prof'] !== undefined && { profileDir: resolve(args['cpu-prof']) }) },
  );
  children.push(gateway.child);
  const ledgerFront = front === 'ledger' ? await startHelperProcess('bench/ledger-passthrough.ts', [worker.url, redis.url]) : undefined;
  if (ledgerFront) children.push(ledgerFront.child);
  const redisPid = redis.pid;

  const clipgate = new Pool(`http://127.0.0.1:${port}`, { connections: concurrency });
  const passThrough = new Pool(proxy.url, { connections: concurrency });
  const ledgerPool = ledgerFront && new Pool(ledgerFront.url, { connections: concurrency });
  let sockets: SocketPool | undefined;
  let job: Record<string, unknown> | undefined;

  const sendRest = async (size: number, output: Output) => {
    const response = await clipgate.request({
      path: '/v1/tasks',
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify(Array.from({ length: size }, () => task(output))),
      headersTimeout: requestTimeoutMs,
      bodyTimeout: requestTimeoutMs,
    });
    const text = await response.body.text();
    if (response.statusCode !== 200 || text.includes('"errors"') || count(text, outputs[output]) !== size) throw new Error(`clipgate answered ${response.statusCode}: ${text.slice(0, 400)}`);
  };
  const sendProxy = async (size: number, pool = passThrough) => {
    const jobs = Array.from({ length: size }, () => ({ ...job, jobId: randomUUID() }));
    const response = await pool.request({
      path: '/',
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(size === 1 ? jobs[0] : jobs),
      headersTimeout: requestTimeoutMs,
      bodyTimeout: requestTimeoutMs,
    });
    const text = await response.body.text();
    if (response.statusCode !== 200 || count(text, 'result') < size) throw new Error(`the pass-through answered ${response.statusCode}: ${text.slice(0, 400)}`);
  };

  type Row = { transport: Transport; output: Output; size: number; clipgate: LoadRun[]; proxy: LoadRun[]; cpu: Record<'clipgate' | 'proxy', Record<'front' | 'redis' | 'worker' | 'generator', number>> };
  const rows: Row[] = [];
  try {
    await waitUntilReady(port);
    // Warm: the embedding and the LoRA resolved (registry, download, inspection) and cached in Redis; the worker
    // selected; the first job captured for the pass-through.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await sendRest(1, 'base64Data');
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    while (!job) {
      const captured = /^JOB (.+)$/m.exec(worker.output())?.[1];
      if (captured) job = JSON.parse(captured) as Record<string, unknown>;
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    sockets = await SocketPool.open(`ws://127.0.0.1:${port}/v1`, concurrency, API_KEY, requestTimeoutMs);
    const transports = args.transports.split(',') as Transport[];
    const chosenOutputs = args.outputs.split(',') as Output[];
    const configurations = sizes.flatMap((size) => transports.flatMap((transport) => chosenOutputs.map((output) => ({ transport, output, size }))));
    const progress = progressBar('realistic', configurations.length * rounds);
    let done = 0;
    for (const { transport, output, size } of configurations) {
      const requests = Math.max(rounds, Math.ceil(tasksPerVariant / size));
      const perRound = Math.ceil(requests / rounds);
      const sendClipgate = ledgerPool ? () => sendProxy(size, ledgerPool) : transport === 'REST' ? () => sendRest(size, output) : () => sockets!.send(Array.from({ length: size }, () => task(output)), outputs[output]);
      const row: Row = { transport, output, size, clipgate: [], proxy: [], cpu: { clipgate: { front: 0, redis: 0, worker: 0, generator: 0 }, proxy: { front: 0, redis: 0, worker: 0, generator: 0 } } };
      const warmRequests = Math.max(concurrency, Math.ceil(warmup / size));
      await closedLoop(warmRequests, concurrency, sendClipgate);
      await closedLoop(warmRequests, concurrency, () => sendProxy(size));
      for (let round = 0; round < rounds; round++) {
        for (const variant of round % 2 === 0 ? (['clipgate', 'proxy'] as const) : (['proxy', 'clipgate'] as const)) {
          const pids = { front: (variant === 'clipgate' ? (ledgerFront ?? gateway) : proxy).child.pid, redis: redisPid, worker: worker.child.pid, generator: process.pid };
          const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processCpuSeconds(pid) ?? NaN]));
          row[variant].push(await closedLoop(perRound, concurrency, variant === 'clipgate' ? sendClipgate : () => sendProxy(size)));
          for (const [name, pid] of Object.entries(pids) as [keyof typeof pids, number | undefined][]) row.cpu[variant][name] += (processCpuSeconds(pid) ?? NaN) - (before[name] ?? NaN);
        }
        progress.advance(++done);
      }
      rows.push(row);
    }
    progress.finish();
  } finally {
    sockets?.close();
    await Promise.all([clipgate.close(), passThrough.close(), ledgerPool?.close()]);
    await Promise.all([gateway.stop(), proxy.stop(), worker.stop(), ledgerFront?.stop()]);
    await Promise.all([registry.close(), redis.stop()]);
  }

  const cores = availableParallelism();
  const lines = [
    `realistic: Redis on, a warm embedding and a warm LoRA per task, the ledger on the path, LOG_LEVEL=${args['log-level']}, one API key; fake worker answering at once, ${workerConcurrency} jobs at a time (the rest queue in front of it); ${concurrency} requests (or frames) in flight; ${rounds} alternating rounds per configuration after a warm-up`,
    `note: generator, clipgate, pass-through, fake worker and Redis are 5 processes sharing ${cores} CPU core${cores === 1 ? '' : 's'}; 1-minute load average before the run: ${loadBefore.toFixed(2)}`,
    ledgerFront ? 'clip: bench/ledger-passthrough.ts (the bare pass-through and the ledger\'s two Redis writes per task), not clipgate' : `clipgate: \`${gateway.command}\``,
    `the pass-through (${baselines[baseline]}) sends the job clipgate sends (captured), one per task`,
    `${'transport'.padEnd(10)}${'output'.padEnd(11)}${'tasks/req'.padStart(9)}${'clip t/s'.padStart(10)}${'proxy t/s'.padStart(10)}${'ratio'.padStart(7)}${'p50 c/p'.padStart(14)}${'p99 c/p'.padStart(14)}${'p99 +ms'.padStart(9)}   CPU µs/task clipgate (redis, worker, gen) | proxy (redis, worker, gen)`,
  ];
  for (const row of rows) {
    const [ours, theirs] = [summarise(row.clipgate), summarise(row.proxy)];
    const tasks = (summary: typeof ours) => summary.requests * row.size;
    const perTask = (variant: 'clipgate' | 'proxy', summary: typeof ours) => {
      const spent = row.cpu[variant];
      const micros = (seconds: number) => ((1e6 * seconds) / tasks(summary)).toFixed(0);
      return `${micros(spent.front)} (${micros(spent.redis)}, ${micros(spent.worker)}, ${micros(spent.generator)})`;
    };
    const ratio = (ours.throughput * row.size) / (theirs.throughput * row.size);
    lines.push(
      `${row.transport.padEnd(10)}${row.output.padEnd(11)}${String(row.size).padStart(9)}${(ours.throughput * row.size).toFixed(0).padStart(10)}${(theirs.throughput * row.size).toFixed(0).padStart(10)}${ratio.toFixed(2).padStart(7)}${`${ours.p50.toFixed(1)}/${theirs.p50.toFixed(1)}`.padStart(14)}${`${ours.p99.toFixed(1)}/${theirs.p99.toFixed(1)}`.padStart(14)}${(ours.p99 - theirs.p99).toFixed(2).padStart(9)}   ${perTask('clipgate', ours)} | ${perTask('proxy', theirs)}`,
    );
  }
  const single = rows.filter((row) => row.size === sizes[0] && row.output === 'base64Data');
  const chart = writeLatencyChart('realistic', `realistic, ${sizes[0]} task/request, base64: clipgate beside the pass-through`, [
    ...single.map((row) => ({ label: `clipgate ${row.transport}`, latenciesMs: row.clipgate.flatMap((run) => run.latenciesMs) })),
    { label: 'pass-through', latenciesMs: single[0]?.proxy.flatMap((run) => run.latenciesMs) ?? [] },
  ]);
  lines.push(`latency chart: ${chart}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (args['serve-fake-worker']) await serveFakeWorker();
else {
  await main();
  process.exit(0);
}
