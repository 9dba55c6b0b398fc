/**
 * The least a gateway with issue 15's task ledger on the path must do, as a front for bench/realistic.ts
 * (`--front ledger`): the bare pass-through of bench/passthrough-proxy.ts plus, for every task, what
 * clipgate's ledger writes on the sync path: a claim (one native `SET key record EX ttl NX GET`, answered
 * before the job goes out) and the final record (one `SET key record EX ttl` before the answer), through one
 * auto-pipelined ioredis connection. The worker's last event is parsed, as anything that records a result
 * must. No validation, resolution, auth, logging or metrics: its ratio to the bare pass-through is the ceiling
 * of any gateway that keeps such a ledger, on the same machine in the same run.
 *
 *   node --import tsx bench/ledger-passthrough.ts http://127.0.0.1:WORKER_PORT redis://127.0.0.1:REDIS_PORT
 *
 * Listens on a free loopback port and prints `LISTENING <url>`; leaves when its parent closes its stdin.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { announceListening, exitWithParent } from './load.js';

const [workerUrl, redisUrl] = process.argv.slice(2);
if (!workerUrl || !redisUrl) {
  process.stderr.write('usage: ledger-passthrough.ts <worker base URL> <redis URL>\n');
  process.exit(2);
}

const worker = new Pool(workerUrl, { connections: 64, keepAliveTimeout: 30_000, pipelining: 1 });
const redis = new Redis(redisUrl, { enableAutoPipelining: true, lazyConnect: false });
const ttlSeconds = 3600;

/** One task: claimed, run, its final record written; what the client gets is the worker's last event. */
async function runJob(job: Record<string, unknown>): Promise<string> {
  const key = `bench:ledger:{${String(job['jobId'] ?? randomUUID())}}`;
  const claimed = await redis.set(key, JSON.stringify({ state: 'processing', updatedAt: Date.now() }), 'EX', ttlSeconds, 'NX', 'GET');
  if (claimed !== null) throw new Error(`task ${key} was taken`);
  const answer = await worker.request({ path: '/v1/jobs', method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' }, body: JSON.stringify(job) });
  const lines = (await answer.body.text()).trimEnd().split('\n');
  const last = lines.at(-1) ?? 'null';
  const event = JSON.parse(last) as unknown;
  await redis.set(key, JSON.stringify({ state: 'success', updatedAt: Date.now(), event }), 'EX', ttlSeconds);
  return last;
}

const server = createServer((request, response) => {
  if (request.method !== 'POST') {
    request.resume();
    response.writeHead(405).end();
    return;
  }
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> | Record<string, unknown>[];
    const jobs = Array.isArray(body) ? body : [body];
    Promise.all(jobs.map(runJob)).then(
      (events) => response.writeHead(200, { 'content-type': 'application/json' }).end(`[${events.join(',')}]`),
      (error: unknown) => response.writeHead(502, { 'content-type': 'text/plain' }).end(`failed: ${String(error)}`),
    );
  });
});

server.listen(0, '127.0.0.1', () => {
  announceListening(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
exitWithParent();
