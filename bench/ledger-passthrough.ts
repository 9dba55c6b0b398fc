/**
 * The least a gateway with issue 15's task ledger on the path must do, as a front for bench/realistic.ts
 * (`--front ledger`): the bare pass-through of bench/passthrough-proxy.ts plus, for every task, what
 * clipgate's ledger writes on the sync path: a claim (one native `SET key record EX ttl NX GET`, answered
 * before the job goes out) and the final record (one `SET key record EX ttl` before the answer), through one
 * auto-pipelined ioredis connection. No validation, resolution, auth, logging or metrics: its ratio to the bare
 * pass-through is the ceiling of any gateway that keeps such a ledger, on the same machine in the same run.
 *
 *   node --import tsx bench/ledger-passthrough.ts http://127.0.0.1:WORKER_PORT redis://127.0.0.1:REDIS_PORT
 *
 * Listens on a free loopback port and prints `LISTENING <url>`; leaves when its parent closes its stdin.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { exitWithParent, servePosts } from './load.js';

const [workerUrl, redisUrl] = process.argv.slice(2);
if (!workerUrl || !redisUrl) {
  process.stderr.write('usage: ledger-passthrough.ts <worker base URL> <redis URL>\n');
  process.exit(2);
}

const worker = new Pool(workerUrl, { connections: 64, keepAliveTimeout: 30_000, pipelining: 1 });
const redis = new Redis(redisUrl, { enableAutoPipelining: true, lazyConnect: false });
const ttlSeconds = 3600;

/**
 * One task: claimed, run, its final record written; what the client gets is the worker's last event. `body`
 * is the job's bytes as they came when the request held just it (sent on as they are, as the bare pass-through
 * does); the worker's event goes into the record unparsed. Nothing a ledger could skip is done.
 */
async function runJob(job: Record<string, unknown>, body?: Buffer): Promise<string> {
  const key = `bench:ledger:{${String(job['jobId'] ?? randomUUID())}}`;
  const claimed = await redis.set(key, `{"state":"processing","updatedAt":${Date.now()}}`, 'EX', ttlSeconds, 'NX', 'GET');
  if (claimed !== null) throw new Error(`task ${key} was taken`);
  const answer = await worker.request({ path: '/v1/jobs', method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' }, body: body ?? JSON.stringify(job) });
  const text = (await answer.body.text()).trimEnd();
  const last = text.slice(text.lastIndexOf('\n') + 1);
  await redis.set(key, `{"state":"success","updatedAt":${Date.now()},"event":${last}}`, 'EX', ttlSeconds);
  return last;
}

servePosts((bytes, response) => {
  const body = JSON.parse(bytes.toString('utf8')) as Record<string, unknown> | Record<string, unknown>[];
  Promise.all(Array.isArray(body) ? body.map((job) => runJob(job)) : [runJob(body, bytes)]).then(
    (events) => response.writeHead(200, { 'content-type': 'application/json' }).end(`[${events.join(',')}]`),
    (error: unknown) => response.writeHead(502, { 'content-type': 'text/plain' }).end(`failed: ${String(error)}`),
  );
});
exitWithParent();
