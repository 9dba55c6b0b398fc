import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * What the benchmarks share: a closed-loop load generator (a fixed number of requests kept in flight, each
 * sender starting its next request when its last one answered), latency percentiles, and the helper processes
 * a benchmark runs beside the gateway, so that none of them competes with the load generator's event loop.
 */

const root = fileURLToPath(new URL('..', import.meta.url));

export interface LoadRun {
  /** One per request, in the order they finished. */
  readonly latenciesMs: number[];
  readonly seconds: number;
}

/** Sends `count` requests, `concurrency` at a time; `send` resolves when the whole answer is read and checked. */
export async function closedLoop(count: number, concurrency: number, send: () => Promise<void>): Promise<LoadRun> {
  const latenciesMs: number[] = [];
  let started = 0;
  const sender = async () => {
    while (started < count) {
      started++;
      const begin = process.hrtime.bigint();
      await send();
      latenciesMs.push(Number(process.hrtime.bigint() - begin) / 1e6);
    }
  };
  const begin = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, sender));
  return { latenciesMs, seconds: (performance.now() - begin) / 1000 };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

export interface LoadSummary {
  readonly requests: number;
  /** Requests per second over the measured rounds together. */
  readonly throughput: number;
  readonly p50: number;
  readonly p99: number;
}

export function summarise(runs: readonly LoadRun[]): LoadSummary {
  const sorted = runs.flatMap((run) => run.latenciesMs).sort((a, b) => a - b);
  const seconds = runs.reduce((sum, run) => sum + run.seconds, 0);
  return { requests: sorted.length, throughput: sorted.length / seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

/**
 * CPU time a process has used so far, all its threads together, in seconds: the sum of the first field (ns on a
 * CPU) of /proc/PID/task/TID/schedstat, which is exact where /proc/PID/stat counts 10 ms ticks. Undefined where
 * there is no /proc (not Linux) or the process is gone.
 */
export function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let nanos = 0;
  for (const thread of threads) {
    try {
      nanos += Number(readFileSync(`/proc/${pid}/task/${thread}/schedstat`, 'utf8').split(' ', 1)[0]);
    } catch {
      // The thread ended since the listing.
    }
  }
  return nanos / 1e9;
}

export interface HelperProcess {
  readonly child: ChildProcess;
  /** What the process announced on its first stdout line, after `LISTENING `. */
  readonly url: string;
  output(): string;
  stop(): Promise<void>;
}

/** The line a helper prints once it serves: `LISTENING http://127.0.0.1:PORT`. */
export function announceListening(url: string): void {
  process.stdout.write(`LISTENING ${url}\n`);
}

/**
 * A bare node:http server on a free loopback port for the pass-through baselines: anything but POST gets 405;
 * each POST's body is read whole and handed to `answer`. Prints `LISTENING <url>` once it listens.
 */
export function servePosts(answer: (body: Buffer, response: ServerResponse) => void): void {
  const server = createServer((request, response) => {
    if (request.method !== 'POST') {
      request.resume();
      response.writeHead(405).end();
      return;
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => answer(Buffer.concat(chunks), response));
  });
  server.listen(0, '127.0.0.1', () => announceListening(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
}

/**
 * A helper that leaves when its parent does: its stdin is a pipe from the parent, which closes when the parent
 * exits, however it exits.
 */
export function exitWithParent(): void {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

/** Runs `script` (relative to the repository root) through tsx and waits for its LISTENING line. */
export async function startHelperProcess(script: string, args: readonly string[] = [], deadlineMs = 20_000): Promise<HelperProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: root,
    env: { PATH: process.env['PATH'] ?? '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  };
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${script} did not announce LISTENING within ${deadlineMs} ms`)), deadlineMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(new Error(`${error.message}\n${output}`));
    };
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`${script} exited (${signal ?? code}) before it listened`)));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const announced = /^LISTENING (\S+)$/m.exec(output);
      if (announced?.[1]) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve(announced[1]);
      }
    });
  }).catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  return { child, url, output: () => output, stop };
}

/**
 * A fake worker (served by `workerScript --serve-fake-worker`) and the bare pass-through in front of it, each in
 * its own process and supervised with `children`: what every gateway-against-proxy benchmark starts.
 */
export async function startWorkerAndProxy(workerScript: string, children: ChildProcess[], proxyScript = 'bench/passthrough-proxy.ts', workerArgs: readonly string[] = []): Promise<{ worker: HelperProcess; proxy: HelperProcess }> {
  const worker = await startHelperProcess(workerScript, ['--serve-fake-worker', ...workerArgs]);
  children.push(worker.child);
  const proxy = await startHelperProcess(proxyScript, [worker.url]);
  children.push(proxy.child);
  return { worker, proxy };
}

/**
 * The helper processes of a benchmark, killed on any exit of this one (an error, SIGINT, the deadline): a
 * benchmark stops by itself, and leaves nothing running.
 */
export function superviseChildren(name: string, deadlineMs: number): ChildProcess[] {
  const children: ChildProcess[] = [];
  const killChildren = () => children.forEach((child) => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  process.once('exit', killChildren);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killChildren();
      process.exit(130);
    });
  }
  setTimeout(() => {
    process.stderr.write(`${name}: still running after ${deadlineMs / 1000} s; giving up\n`);
    process.exit(1);
  }, deadlineMs).unref();
  return children;
}
