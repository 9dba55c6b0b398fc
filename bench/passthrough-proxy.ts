/**
 * The least any gateway in front of a worker must do, as a baseline for bench/dispatch-overhead.ts: a bare
 * node:http server that reads each POST's body, sends the same bytes as a job to the worker's POST /v1/jobs
 * through a keep-alive undici Pool (sized like clipgate's), and streams the worker's answer back as it comes.
 * No validation, no model resolution, no parsing of the worker's events, no logging. A body that is a JSON array
 * (bench/realistic.ts: several tasks per request) is the least a gateway does for it: each element sent as a job
 * at once, and the answers returned together as a JSON array of the worker's streams.
 *
 *   node --import tsx bench/passthrough-proxy.ts http://127.0.0.1:WORKER_PORT
 *
 * Listens on a free loopback port and prints `LISTENING <url>`; leaves when its parent closes its stdin.
 */
import type { ServerResponse } from 'node:http';
import { Pool } from 'undici';
import { exitWithParent, servePosts } from './load.js';

const workerUrl = process.argv[2];
if (!workerUrl) {
  process.stderr.write('usage: passthrough-proxy.ts <worker base URL>\n');
  process.exit(2);
}

const worker = new Pool(workerUrl, { connections: 64, keepAliveTimeout: 30_000, pipelining: 1 });

servePosts((body, response) => {
  if (body[0] === 0x5b) {
    fanOut(body, response);
    return;
  }
  worker
    .stream(
      {
        path: '/v1/jobs',
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
        body,
      },
      ({ statusCode, headers }) => {
        response.writeHead(statusCode, { 'content-type': String(headers['content-type'] ?? 'application/octet-stream') });
        return response;
      },
    )
    .catch((error: unknown) => {
      if (response.headersSent) response.destroy();
      else response.writeHead(502, { 'content-type': 'text/plain' }).end(`worker unreachable: ${String(error)}`);
    });
});

function fanOut(body: Buffer, response: ServerResponse): void {
  const jobs = JSON.parse(body.toString('utf8')) as unknown[];
  Promise.all(
    jobs.map(async (job) => {
      const answer = await worker.request({ path: '/v1/jobs', method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' }, body: JSON.stringify(job) });
      return answer.body.text();
    }),
  ).then(
    (streams) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(streams)),
    (error: unknown) => response.writeHead(502, { 'content-type': 'text/plain' }).end(`worker unreachable: ${String(error)}`),
  );
}

exitWithParent();
