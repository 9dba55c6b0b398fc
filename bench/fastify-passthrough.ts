/**
 * A second baseline for bench/realistic.ts (`--baseline fastify`): the least a gateway built on Fastify does,
 * to tell the framework's share of clipgate's cost from clipgate's own. One POST route; Fastify's own JSON body
 * parser; each job of the body (one, or each element of an array) sent to the worker's POST /v1/jobs through a
 * keep-alive undici Pool; the worker's NDJSON read and its final event parsed; the final events answered as
 * JSON through Fastify's reply. No validation, resolution, ledger, auth, metrics or logging.
 *
 *   node --import tsx bench/fastify-passthrough.ts http://127.0.0.1:WORKER_PORT
 *
 * Listens on a free loopback port and prints `LISTENING <url>`; leaves when its parent closes its stdin.
 */
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { announceListening, exitWithParent } from './load.js';

const workerUrl = process.argv[2];
if (!workerUrl) {
  process.stderr.write('usage: fastify-passthrough.ts <worker base URL>\n');
  process.exit(2);
}

const worker = new Pool(workerUrl, { connections: 64, keepAliveTimeout: 30_000, pipelining: 1 });
const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });

/** The worker's last event (its `result` or `error`), parsed as a gateway must to answer anything of its own. */
async function runJob(job: unknown): Promise<unknown> {
  const answer = await worker.request({ path: '/v1/jobs', method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' }, body: JSON.stringify(job) });
  const lines = (await answer.body.text()).trimEnd().split('\n');
  return JSON.parse(lines.at(-1) ?? 'null') as unknown;
}

app.post('/*', async (request) => {
  const body = request.body;
  return Array.isArray(body) ? Promise.all(body.map(runJob)) : runJob(body);
});

await app.listen({ port: 0, host: '127.0.0.1' });
announceListening(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
exitWithParent();
