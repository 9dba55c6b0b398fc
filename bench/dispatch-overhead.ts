/**
 * The gateway's dispatch overhead, measured through real processes on loopback: a fake GPU worker that answers
 * every job at once, clipgate in front of it, and beside it a bare undici pass-through proxy in front of the same
 * worker (bench/passthrough-proxy.ts: the least any gateway must do). The load generator keeps `concurrency`
 * requests in flight against each, in alternating rounds so drift hits both alike, and prints throughput and
 * p50/p99 latency of both, and clipgate's against the proxy's as a ratio and an overhead.
 *
 *   npm run bench:dispatch [-- --requests 48000 --concurrency 50 --rounds 16 --warmup 6000 --log-level warn --cpu-prof DIR]
 *
 * Target: clipgate ≥ 0.8 × the proxy's throughput, and p99 overhead ≤ 2 ms, at 50 connections on 2 cores.
 * With --cpu-prof, the gateway runs under `node --cpu-prof` (writing its profile into DIR when it exits) and the
 * top self-time functions are printed after the results.
 *
 * Each helper runs in its own process: the worker (this file, run again with --serve-fake-worker), the proxy and
 * the gateway, which is started as `npm start` starts it (package.json's start command on the built dist/) at
 * LOG_LEVEL=warn unless --log-level says otherwise, without API keys. Loopback only; bounded in requests and time; stops by itself and kills its children on any exit.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { startFakeWorker } from '../test/support/fake-worker.js';
import { freePort } from '../test/support/free-port.js';
import { waitUntilReady } from '../test/support/server-process.js';
import { startGatewayAsNpmStartDoes } from './gateway-process.js';
import { benchJob, benchTask } from './bench-tasks.js';
import { progressBar, writeLatencyChart } from './report.js';
import { announceListening, closedLoop, exitWithParent, processCpuSeconds, startWorkerAndProxy, summarise, superviseChildren, type LoadRun, type LoadSummary } from './load.js';

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '48000' },
    concurrency: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '16' },
    /** Per variant, in alternating batches of 1000: rounds keep speeding up (JIT in all four processes) for ~5000. */
    warmup: { type: 'string', default: '6000' },
    'cpu-prof': { type: 'string' },
    /** The gateway's LOG_LEVEL: at `info` it writes one line per request (to a pipe this process drains). */
    'log-level': { type: 'string', default: 'warn' },
    'serve-fake-worker': { type: 'boolean', default: false },
  },
});

const targetThroughputRatio = 0.8;
const targetP99OverheadMs = 2;
/** The whole run, start-up included; past it everything is killed. */
const runDeadlineMs = 10 * 60_000;
const requestTimeoutMs = 10_000;
const outputTailChars = 16_384;
const warmupBatch = 1000;

type Variant = 'proxy' | 'clipgate';
const labels: Record<Variant, string> = { proxy: 'pass-through proxy (undici)', clipgate: 'clipgate' };

/** Runs in the worker's own process, so that answering jobs never competes with the load generator. */
async function serveFakeWorker(): Promise<void> {
  const worker = await startFakeWorker({ maxConcurrency: 1000 });
  worker.setBehaviour({ acceptDelayMs: 0, latencyMs: 0, progressEveryMs: 0 });
  announceListening(worker.url);
  exitWithParent();
}

async function send(pool: Pool, variant: Variant): Promise<void> {
  const response = await pool.request({
    path: variant === 'clipgate' ? '/v1/tasks' : '/',
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: variant === 'clipgate' ? JSON.stringify([benchTask()]) : benchJob(),
    headersTimeout: requestTimeoutMs,
    bodyTimeout: requestTimeoutMs,
  });
  const text = await response.body.text();
  // Runware's shape: a success carries data alone, no errors member.
  const ok = variant === 'clipgate' ? text.includes('"imageBase64Data"') && !text.includes('"errors"') : text.includes('"event":"result"');
  if (response.statusCode !== 200 || !ok) throw new Error(`${labels[variant]} answered ${response.statusCode}: ${text.slice(0, 300)}`);
}

/** The gateway is ready before its first health poll of the worker; a task that succeeds shows both are. */
async function waitUntilDispatching(pool: Pool, deadlineMs = 20_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      await send(pool, 'clipgate');
      return;
    } catch (error) {
      last = error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`clipgate did not run a task within ${deadlineMs} ms; last: ${last instanceof Error ? last.message : String(last)}`);
}

/** CPU seconds spent while a variant was measured, by the proxy or clipgate (front), the fake worker and this process. */
interface CpuSpent {
  front: number;
  worker: number;
  generator: number;
}

const micros = (seconds: number, requests: number) => (Number.isFinite(seconds) ? ((1e6 * seconds) / requests).toFixed(0) : 'n/a');

function formatRow(variant: Variant, summary: LoadSummary, rounds: readonly LoadRun[], cpu: CpuSpent): string {
  const perRound = rounds.map((run) => (run.latenciesMs.length / run.seconds).toFixed(0)).join(' ');
  const cpuColumns = [cpu.front, cpu.worker, cpu.generator].map((seconds) => micros(seconds, summary.requests).padStart(9)).join('');
  return `${labels[variant].padEnd(30)}${summary.throughput.toFixed(0).padStart(8)}${summary.p50.toFixed(2).padStart(9)}${summary.p99.toFixed(2).padStart(9)}${cpuColumns}   ${perRound}`;
}

/**
 * Self time per function of a .cpuprofile (Chrome's format, as `node --cpu-prof` writes it), top first, as shares of
 * the time the thread was not idle. Samples are taken on a wall clock: a thread descheduled in a syscall (writev
 * waking its peer on a shared core) is counted there, so syscalls look bigger than the CPU they use.
 */
function topSelfTime(profile: CpuProfile, count: number): string[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicros = new Map<string, number>();
  let busyMicros = 0;
  profile.samples.forEach((id, index) => {
    const frame = byId.get(id)?.callFrame;
    const delta = profile.timeDeltas[index] ?? 0;
    if (!frame || frame.functionName === '(idle)') return;
    busyMicros += delta;
    const where = frame.url ? ` ${frame.url.replace(/^file:\/\/.*?\/(node_modules|src|dist)\//, '$1/')}` : '';
    const key = `${frame.functionName || '(anonymous)'}${where}`;
    selfMicros.set(key, (selfMicros.get(key) ?? 0) + delta);
  });
  return [...selfMicros]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([key, micros]) => `${((100 * micros) / busyMicros).toFixed(1).padStart(6)}%  ${(micros / 1000).toFixed(0).padStart(7)} ms  ${key}`);
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

async function main(): Promise<void> {
  const requestsPerVariant = Number(args.requests);
  const concurrency = Number(args.concurrency);
  const rounds = Number(args.rounds);
  const warmup = Number(args.warmup);
  for (const [name, value] of Object.entries({ requests: requestsPerVariant, concurrency, rounds })) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  }
  if (!Number.isInteger(warmup) || warmup < 0) throw new Error('--warmup must be a non-negative integer');
  const loadBefore = loadavg()[0] ?? NaN;
  const perRound = Math.ceil(requestsPerVariant / rounds);
  const profileDir = args['cpu-prof'] === undefined ? undefined : resolve(args['cpu-prof']);
  if (profileDir) await mkdir(profileDir, { recursive: true });

  const children = superviseChildren('dispatch-overhead', runDeadlineMs);

  const { worker, proxy } = await startWorkerAndProxy('bench/dispatch-overhead.ts', children);
  const port = await freePort();
  const gatewayEnv = {
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: args['log-level'],
    ...(process.env['GATEWAY_NODE_OPTIONS'] ? { NODE_OPTIONS: process.env['GATEWAY_NODE_OPTIONS'] } : {}),
    WORKER_URLS: worker.url,
    CIVITAI_BASE_URL: 'off',
    QUEUE_MAX: '100000',
    WORKER_HEALTH_INTERVAL_MS: '500',
  };
  const gateway = await startGatewayAsNpmStartDoes(gatewayEnv, { profileDir, outputTailChars });
  const gatewayCommand = gateway.command;
  children.push(gateway.child);

  const pools: Record<Variant, Pool> = {
    proxy: new Pool(proxy.url, { connections: concurrency }),
    clipgate: new Pool(`http://127.0.0.1:${port}`, { connections: concurrency }),
  };
  const runs: Record<Variant, LoadRun[]> = { proxy: [], clipgate: [] };
  // CPU seconds each process spent while a variant was measured: where the cores went, however they were shared.
  const cpu: Record<Variant, CpuSpent> = { proxy: { front: 0, worker: 0, generator: 0 }, clipgate: { front: 0, worker: 0, generator: 0 } };
  const measure = async (variant: Variant) => {
    const pids = { front: (variant === 'proxy' ? proxy : gateway).child.pid, worker: worker.child.pid };
    const before = { front: processCpuSeconds(pids.front) ?? NaN, worker: processCpuSeconds(pids.worker) ?? NaN, generator: process.cpuUsage() };
    runs[variant].push(await closedLoop(perRound, concurrency, () => send(pools[variant], variant)));
    const generator = process.cpuUsage(before.generator);
    cpu[variant].front += (processCpuSeconds(pids.front) ?? NaN) - before.front;
    cpu[variant].worker += (processCpuSeconds(pids.worker) ?? NaN) - before.worker;
    cpu[variant].generator += (generator.user + generator.system) / 1e6;
  };
  try {
    await waitUntilReady(port).catch((error: unknown) => {
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${gateway.output()}`);
    });
    await waitUntilDispatching(pools.clipgate);
    // Warm-up: JIT in every process, keep-alive connections on every hop.
    for (let done = 0; done < warmup; done += warmupBatch) {
      for (const variant of ['proxy', 'clipgate'] as const) await closedLoop(Math.min(warmupBatch, warmup - done), concurrency, () => send(pools[variant], variant));
    }

    const progress = progressBar('dispatch overhead', rounds * 2);
    for (let round = 0; round < rounds; round++) {
      for (const variant of round % 2 === 0 ? (['proxy', 'clipgate'] as const) : (['clipgate', 'proxy'] as const)) {
        await measure(variant);
        progress.advance(runs.proxy.length + runs.clipgate.length);
      }
    }
    progress.finish();
  } finally {
    await Promise.all([pools.proxy.close(), pools.clipgate.close()]);
    await Promise.all([gateway.stop(), proxy.stop(), worker.stop()]);
  }

  const proxyResult = summarise(runs.proxy);
  const clipgateResult = summarise(runs.clipgate);
  const throughputRatio = clipgateResult.throughput / proxyResult.throughput;
  const p50Overhead = clipgateResult.p50 - proxyResult.p50;
  const p99Overhead = clipgateResult.p99 - proxyResult.p99;
  const cpuRatio = (cpu.clipgate.front / clipgateResult.requests) / (cpu.proxy.front / proxyResult.requests);
  const verdict = (pass: boolean) => (pass ? 'PASS' : 'MISS');
  const cores = availableParallelism();
  const lines = [
    `dispatch overhead: fake worker answering instantly; ${concurrency} concurrent connections; ${perRound * rounds} requests/variant in ${rounds} alternating rounds after a warm-up of ${warmup}; 1 task (512×512 PNG, base64) per request`,
    `note: load generator, clipgate, pass-through proxy and fake worker are 4 processes sharing this machine's ${cores} CPU core${cores === 1 ? '' : 's'}${cores <= 2 ? ': each variant is also bounded by the CPU the generator and the worker take' : ''}`,
    `clipgate: \`${gatewayCommand}\` (package.json's start), LOG_LEVEL=${args['log-level']}, no API keys; the proxy: bench/passthrough-proxy.ts`,
    `note: 1-minute load average before the run: ${loadBefore.toFixed(2)} (anything else running skews both variants)`,
    `CPU µs/request: CPU time (all threads) per request of the front process (the proxy or clipgate), the fake worker and the load generator`,
    `${'variant'.padEnd(30)}${'req/s'.padStart(8)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'front µs'.padStart(9)}${'worker µs'.padStart(10)}${'gen µs'.padStart(8)}   req/s per round`,
    formatRow('proxy', proxyResult, runs.proxy, cpu.proxy),
    formatRow('clipgate', clipgateResult, runs.clipgate, cpu.clipgate),
    `throughput ratio clipgate/proxy: ${throughputRatio.toFixed(2)} (target ≥ ${targetThroughputRatio.toFixed(2)}: ${verdict(throughputRatio >= targetThroughputRatio)})`,
    `p50 overhead: ${p50Overhead >= 0 ? '+' : ''}${p50Overhead.toFixed(2)} ms`,
    `p99 overhead: ${p99Overhead >= 0 ? '+' : ''}${p99Overhead.toFixed(2)} ms (target ≤ ${targetP99OverheadMs.toFixed(2)} ms: ${verdict(p99Overhead <= targetP99OverheadMs)})`,
    `CPU per request: clipgate ${micros(cpu.clipgate.front, clipgateResult.requests)} µs, the proxy ${micros(cpu.proxy.front, proxyResult.requests)} µs (${cpuRatio.toFixed(2)}×)`,
  ];

  if (profileDir) {
    // Named CPU.<date>.<time>.<pid>.<thread>.<seq>: thread 0 is the gateway's main thread.
    const name = (await readdir(profileDir)).find((file) => file.endsWith('.cpuprofile') && file.includes(`.${gateway.child.pid}.0.`));
    const profile = name === undefined ? undefined : (JSON.parse(await readFile(join(profileDir, name), 'utf8')) as CpuProfile);
    lines.push(
      name && profile
        ? [`gateway CPU profile ${join(profileDir, name)} (its whole life, start-up and warm-up included); top self time, share of busy time:`, ...topSelfTime(profile, 25)].join('\n')
        : `gateway CPU profile: none written into ${profileDir}`,
    );
  }
  const chart = writeLatencyChart('dispatch-overhead', `dispatch overhead: ${concurrency} connections, ${perRound * rounds} requests each`, [
    { label: labels.proxy, latenciesMs: runs.proxy.flatMap((run) => run.latenciesMs) },
    { label: labels.clipgate, latenciesMs: runs.clipgate.flatMap((run) => run.latenciesMs) },
  ]);
  lines.push(`latency chart: ${chart}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (args['serve-fake-worker']) await serveFakeWorker();
else await main();
