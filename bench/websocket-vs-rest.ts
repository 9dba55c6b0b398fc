/**
 * The WebSocket path beside the REST path, through real processes on loopback: one fake GPU worker answering
 * every job at once, one clipgate in front of it, and beside them a bare undici pass-through proxy to the same
 * worker (bench/passthrough-proxy.ts). Three variants measured in alternating rounds, each with `concurrency`
 * tasks in flight: the proxy, clipgate over REST (`concurrency` keep-alive connections, one task per request),
 * and clipgate over WebSocket (`concurrency` authenticated sockets, one task per frame, each answered by one
 * image frame). Prints throughput, p50/p99 and CPU per task of each, and the ratios WebSocket/REST and
 * REST/proxy.
 *
 *   npm run bench:websocket [-- --tasks 24000 --concurrency 50 --rounds 12 --warmup 3000 --log-level warn]
 *
 * Loopback only; bounded in tasks and time; stops by itself and kills its children on any exit.
 */
import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { benchJob, benchTask } from './bench-tasks.js';
import { freePort } from '../test/support/free-port.js';
import { waitUntilReady } from '../test/support/server-process.js';
import { startGatewayAsNpmStartDoes } from './gateway-process.js';
import { closedLoop, processCpuSeconds, startWorkerAndProxy, summarise, superviseChildren, type LoadRun } from './load.js';
import { progressBar, writeLatencyChart } from './report.js';
import { SocketPool } from './socket-pool.js';

const { values: args } = parseArgs({
  options: {
    tasks: { type: 'string', default: '24000' },
    concurrency: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '12' },
    warmup: { type: 'string', default: '3000' },
    'log-level': { type: 'string', default: 'warn' },
  },
});

const runDeadlineMs = 10 * 60_000;
const requestTimeoutMs = 10_000;
const API_KEY = 'bench-websocket-key-0123456789';

type Variant = 'proxy' | 'rest' | 'websocket';
const labels: Record<Variant, string> = { proxy: 'pass-through proxy (undici)', rest: 'clipgate REST', websocket: 'clipgate WebSocket' };

async function sendOverHttp(pool: Pool, variant: 'proxy' | 'rest'): Promise<void> {
  const response = await pool.request({
    path: variant === 'rest' ? '/v1/tasks' : '/',
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
    body: variant === 'rest' ? JSON.stringify([benchTask()]) : benchJob(),
    headersTimeout: requestTimeoutMs,
    bodyTimeout: requestTimeoutMs,
  });
  const text = await response.body.text();
  const ok = variant === 'rest' ? text.includes('"imageBase64Data"') && !text.includes('"errors"') : text.includes('"event":"result"');
  if (response.statusCode !== 200 || !ok) throw new Error(`${labels[variant]} answered ${response.statusCode}: ${text.slice(0, 300)}`);
}

async function main(): Promise<void> {
  const tasksPerVariant = Number(args.tasks);
  const concurrency = Number(args.concurrency);
  const rounds = Number(args.rounds);
  const warmup = Number(args.warmup);
  for (const [name, value] of Object.entries({ tasks: tasksPerVariant, concurrency, rounds })) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  }
  const perRound = Math.ceil(tasksPerVariant / rounds);
  const loadBefore = loadavg()[0] ?? NaN;

  const children = superviseChildren('websocket-vs-rest', runDeadlineMs);

  // The worker and the proxy of the dispatch benchmark, so that the REST/proxy ratio reads the same.
  const { worker, proxy } = await startWorkerAndProxy('bench/dispatch-overhead.ts', children);
  const port = await freePort();
  const gateway = await startGatewayAsNpmStartDoes(
    {
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: args['log-level'],
      API_KEYS: API_KEY,
      WORKER_URLS: worker.url,
      CIVITAI_BASE_URL: 'off',
      QUEUE_MAX: '100000',
      WORKER_HEALTH_INTERVAL_MS: '500',
      WS_MAX_SOCKETS_PER_KEY: String(concurrency),
    },
    { outputTailChars: 16_384 },
  );
  children.push(gateway.child);

  const pools = { proxy: new Pool(proxy.url, { connections: concurrency }), rest: new Pool(`http://127.0.0.1:${port}`, { connections: concurrency }) };
  let sockets: SocketPool | undefined;
  const send: Record<Variant, () => Promise<void>> = {
    proxy: () => sendOverHttp(pools.proxy, 'proxy'),
    rest: () => sendOverHttp(pools.rest, 'rest'),
    websocket: () => sockets!.send([benchTask()], '"imageBase64Data"'),
  };
  const runs: Record<Variant, LoadRun[]> = { proxy: [], rest: [], websocket: [] };
  const frontCpu: Record<Variant, number> = { proxy: 0, rest: 0, websocket: 0 };
  const variants = ['proxy', 'rest', 'websocket'] as const;
  try {
    await waitUntilReady(port).catch((error: unknown) => {
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${gateway.output()}`);
    });
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await send.rest();
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    sockets = await SocketPool.open(`ws://127.0.0.1:${port}/v1`, concurrency, API_KEY, requestTimeoutMs);
    for (const variant of variants) await closedLoop(warmup, concurrency, send[variant]);
    const progress = progressBar('websocket vs rest', rounds * variants.length);
    for (let round = 0; round < rounds; round++) {
      // A different order each round, so that drift in the machine hits every variant alike.
      const order = [...variants.slice(round % 3), ...variants.slice(0, round % 3)];
      for (const variant of order) {
        const pid = (variant === 'proxy' ? proxy : gateway).child.pid;
        const before = processCpuSeconds(pid) ?? NaN;
        runs[variant].push(await closedLoop(perRound, concurrency, send[variant]));
        frontCpu[variant] += (processCpuSeconds(pid) ?? NaN) - before;
        progress.advance(variants.reduce((sum, each) => sum + runs[each].length, 0));
      }
    }
    progress.finish();
  } finally {
    sockets?.close();
    await Promise.all([pools.proxy.close(), pools.rest.close()]);
    await Promise.all([gateway.stop(), proxy.stop(), worker.stop()]);
  }

  const results = Object.fromEntries(variants.map((variant) => [variant, summarise(runs[variant])])) as Record<Variant, ReturnType<typeof summarise>>;
  const micros = (variant: Variant) => ((1e6 * frontCpu[variant]) / results[variant].requests).toFixed(0);
  const row = (variant: Variant) =>
    `${labels[variant].padEnd(30)}${results[variant].throughput.toFixed(0).padStart(8)}${results[variant].p50.toFixed(2).padStart(9)}${results[variant].p99.toFixed(2).padStart(9)}${micros(variant).padStart(10)}`;
  const cores = availableParallelism();
  const chart = writeLatencyChart('websocket-vs-rest',
    `WebSocket beside REST and the pass-through: ${concurrency} tasks in flight`,
    variants.map((variant) => ({ label: labels[variant], latenciesMs: runs[variant].flatMap((run) => run.latenciesMs) })),
  );
  process.stdout.write(
    [
      `WebSocket beside REST: fake worker answering instantly; ${concurrency} tasks in flight; ${perRound * rounds} tasks/variant in ${rounds} rounds after a warm-up of ${warmup}; 1 task (512×512 PNG, base64) per request or frame`,
      `note: load generator, clipgate, pass-through proxy and fake worker are 4 processes sharing ${cores} CPU core${cores === 1 ? '' : 's'}; 1-minute load average before the run: ${loadBefore.toFixed(2)}`,
      `clipgate: \`${gateway.command}\` (package.json's start), LOG_LEVEL=${args['log-level']}, one API key`,
      `${'variant'.padEnd(30)}${'tasks/s'.padStart(8)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'front µs'.padStart(10)}`,
      ...variants.map(row),
      `throughput ratio WebSocket/REST: ${(results.websocket.throughput / results.rest.throughput).toFixed(2)}; p99 WebSocket − REST: ${(results.websocket.p99 - results.rest.p99).toFixed(2)} ms`,
      `throughput ratio REST/proxy: ${(results.rest.throughput / results.proxy.throughput).toFixed(2)}; p99 REST − proxy: ${(results.rest.p99 - results.proxy.p99).toFixed(2)} ms`,
      `latency chart: ${chart}`,
    ].join('\n') + '\n',
  );
}

await main();
