/**
 * The least any gateway in front of a worker must do, as a baseline for bench/dispatch-overhead.ts: a bare
 * node:http server that reads each POST's body, sends the same bytes as a job to the worker's POST /v1/jobs
 * through a keep-alive undici Pool (sized like clipgate's), and streams the worker's answer back as it comes.
 * No validation, no model resolution, no parsing of the worker's events, no logging.
 *
 *   node --import tsx bench/passthrough-proxy.ts http://127.0.0.1:WORKER_PORT
 *
 * Listens on a free loopback port and prints `LISTENING <url>`; leaves when its parent closes its stdin.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { announceListening, exitWithParent } from './load.js';

const workerUrl = process.argv[2];
if (!workerUrl) {
  process.stderr.write('usage: passthrough-proxy.ts <worker base URL>\n');
  process.exit(2);
}

const worker = new Pool(workerUrl, { connections: 64, keepAliveTimeout: 30_000, pipelining: 1 });

const server = createServer((request, response) => {
  if (request.method !== 'POST') {
    request.resume();
    response.writeHead(405).end();
    return;
  }
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    worker
      .stream(
        {
          path: '/v1/jobs',
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
          body: Buffer.concat(chunks),
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
});

server.listen(0, '127.0.0.1', () => {
  announceListening(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
exitWithParent();
