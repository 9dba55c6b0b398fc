import { BoundedCounter } from './bounded-counter.js';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A Civitai-compatible registry on loopback, for tests and benchmarks: real HTTP, so clients run their
 * real sockets, timeouts and redirects against it. Two servers on two ports — two origins — because
 * Civitai's download URL answers 302 to a storage host, and credentials must not follow.
 *
 * Lean on purpose, since benchmarks load it: answers are serialised when a version is added, and the
 * request log and per-key counters are bounded.
 */

export interface FakeRegistryRequest {
  readonly url: string;
  readonly origin: 'registry' | 'storage';
  readonly authorization: string | undefined;
}

export interface FakeBehaviour {
  /** Added before every answer, on both origins. */
  latencyMs: number;
  /** The next N requests, on either origin, answer failStatus. */
  failNext: number;
  /** Default 503. */
  failStatus: number;
  /** Sent as Retry-After with injected failures; empty for none. */
  retryAfter: string;
  /** Requests are read and never answered: the client must give up (or close() ends them). */
  hang: boolean;
  /**
   * What a model-version lookup answers 200 with instead of its JSON: `garbage`, a page that is not JSON;
   * `huge`, JSON-looking bytes streamed without end (until the client hangs up, or 1 GiB).
   */
  lookupBody: 'json' | 'garbage' | 'huge';
  /** Storage honours `Range: bytes=a-b` with 206 (as S3 does); false: it sends the whole file with 200. */
  ranges: boolean;
}

export interface FakeRegistry {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** The second origin, which serves file bytes after the registry's redirect. */
  readonly storageUrl: string;
  /** Serves `GET /api/v1/model-versions/{versionId}`; a second spec for the same id replaces the first. */
  addModelVersion(spec: FakeModelVersion): void;
  /**
   * Registers a download: the returned URL (`{url}/api/download{path}`) answers 302 to
   * `{storageUrl}/files{path}`, which serves the bytes.
   */
  addFile(path: string, bytes: Uint8Array): string;
  readonly calls: {
    /** Lookups received, failed and hung ones included: one per attempt a client made. */
    versionLookups(versionId?: string): number;
    /** Files served in full by storage (redirects and failures not counted). */
    downloads(path?: string): number;
    /** Ranged reads storage answered with 206. */
    rangeReads(path?: string): number;
    /** Bytes storage has written into responses (a client that hangs up early got fewer). */
    bytesSent(): number;
  };
  /** The most recent requests, oldest first (at least the last 1000). */
  readonly requests: readonly FakeRegistryRequest[];
  setBehaviour(behaviour: Partial<FakeBehaviour>): void;
  close(): Promise<void>;
}

export interface FakeModelFile {
  name: string;
  /**
   * When given, the file is downloadable at `/models/{versionId}/{name}` and the answer carries its real
   * downloadUrl, SHA-256 and sizeKB (unless given here, so a test can make the registry lie).
   */
  bytes?: Uint8Array;
  sha256?: string;
  /** Civitai's metadata.format; default from the extension (SafeTensor, PickleTensor, Other). */
  format?: string;
  /** Default `Success`. */
  pickleScanResult?: string;
  virusScanResult?: string;
  /** Default: the first file, when no file of the spec says. */
  primary?: boolean;
  sizeKB?: number;
  /** Civitai's file type; default `Model`. */
  type?: string;
}

export interface FakeModelVersion {
  modelId: string | number;
  versionId: string | number;
  /** The model's name; default `Model {modelId}`. */
  name?: string;
  /** The version's name; default `v1.0`. */
  versionName?: string;
  /** Civitai's model.type: `TextualInversion`, `LORA`, `Checkpoint`, … */
  type: string;
  baseModel: string;
  trainedWords?: string[];
  files?: FakeModelFile[];
}

const maxLoggedRequests = 1000;

const versionPrefix = '/api/v1/model-versions/';
const downloadPrefix = '/api/download';
const storagePrefix = '/files';


/** Paths as the URL parser writes them, so `/a b.pt` and `/a%20b.pt` are one file. */
function normalisePath(path: string): string {
  return new URL(path.startsWith('/') ? path : `/${path}`, 'http://fake').pathname;
}

/** Never throws: a malformed escape from a load generator must not take the server down. */
function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function formatOfName(name: string): string {
  if (name.endsWith('.safetensors')) return 'SafeTensor';
  if (/\.(pt|bin|ckpt|pth)$/.test(name)) return 'PickleTensor';
  return 'Other';
}

function sendJson(response: ServerResponse, status: number, body: string | Buffer, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  response.end(body);
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A 200 whose body never ends: it is written as fast as the client reads it, up to 1 GiB. */
function streamHuge(response: ServerResponse): void {
  const chunk = Buffer.alloc(64 * 1024, '{"files":[');
  let left = 16 * 1024;
  response.writeHead(200, { 'content-type': 'application/json' });
  const write = (): void => {
    while (left > 0 && !response.destroyed) {
      left -= 1;
      if (!response.write(chunk)) {
        response.once('drain', write);
        return;
      }
    }
    if (!response.destroyed) response.end();
  };
  write();
}

export async function startFakeRegistry(): Promise<FakeRegistry> {
  const answers = new Map<string, Buffer>();
  const files = new Map<string, Uint8Array>();
  const lookups = new BoundedCounter();
  const downloads = new BoundedCounter();
  const rangeReads = new BoundedCounter();
  let bytesSent = 0;
  const requests: FakeRegistryRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const behaviour: FakeBehaviour = { latencyMs: 0, failNext: 0, failStatus: 503, retryAfter: '', hang: false, lookupBody: 'json', ranges: true };

  const registry = createServer((request, response) => handle('registry', request, response));
  const storage = createServer((request, response) => handle('storage', request, response));
  const url = await listen(registry);
  const storageUrl = await listen(storage);

  function handle(origin: FakeRegistryRequest['origin'], request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? '/').split('?', 1)[0] ?? '/';
    requests.push({ url: `${origin === 'registry' ? url : storageUrl}${request.url ?? '/'}`, origin, authorization: request.headers.authorization });
    if (requests.length > 2 * maxLoggedRequests) requests.splice(0, requests.length - maxLoggedRequests);
    if (origin === 'registry' && path.startsWith(versionPrefix)) lookups.add(decodePathPart(path.slice(versionPrefix.length)));
    // Request bodies are not used; reading them keeps the connection reusable.
    request.resume();
    if (behaviour.hang) return;
    const answer = (): void => {
      if (behaviour.failNext > 0) {
        behaviour.failNext -= 1;
        const headers: Record<string, string> = behaviour.retryAfter ? { 'retry-after': behaviour.retryAfter } : {};
        sendJson(response, behaviour.failStatus, '{"error":"injected failure"}', headers);
        return;
      }
      if (origin === 'registry') answerRegistry(path, response);
      else answerStorage(path, request, response);
    };
    if (behaviour.latencyMs <= 0) {
      answer();
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!response.destroyed) answer();
    }, behaviour.latencyMs);
    timers.add(timer);
  }

  function answerRegistry(path: string, response: ServerResponse): void {
    if (path.startsWith(versionPrefix)) {
      const versionId = decodePathPart(path.slice(versionPrefix.length));
      if (behaviour.lookupBody === 'garbage') return sendJson(response, 200, '<html><body>Cloudflare: checking your browser…</body></html>');
      if (behaviour.lookupBody === 'huge') return streamHuge(response);
      const answer = answers.get(versionId);
      if (answer) sendJson(response, 200, answer);
      else sendJson(response, 404, JSON.stringify({ error: `No model version with id ${versionId}` }));
      return;
    }
    if (path.startsWith(`${downloadPrefix}/`)) {
      const filePath = path.slice(downloadPrefix.length);
      if (files.has(filePath)) {
        response.writeHead(302, { location: `${storageUrl}${storagePrefix}${filePath}`, 'content-length': 0 });
        response.end();
        return;
      }
    }
    sendJson(response, 404, '{"error":"Not found"}');
  }

  function answerStorage(path: string, request: IncomingMessage, response: ServerResponse): void {
    const filePath = path.startsWith(`${storagePrefix}/`) ? path.slice(storagePrefix.length) : undefined;
    const bytes = filePath === undefined ? undefined : files.get(filePath);
    if (filePath === undefined || bytes === undefined) {
      sendJson(response, 404, '{"error":"Not found"}');
      return;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? '');
    if (behaviour.ranges && range) {
      const start = Number(range[1]);
      const end = Math.min(range[2] ? Number(range[2]) : bytes.byteLength - 1, bytes.byteLength - 1);
      const part = bytes.subarray(start, end + 1);
      response.writeHead(206, { 'content-type': 'application/octet-stream', 'content-length': part.byteLength, 'content-range': `bytes ${start}-${end}/${bytes.byteLength}` });
      response.end(part);
      bytesSent += part.byteLength;
      rangeReads.add(filePath);
      return;
    }
    response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.byteLength });
    // Written in pieces, so a client that reads only a prefix and hangs up is seen to have taken little.
    let offset = 0;
    const writeMore = (): void => {
      while (offset < bytes.byteLength && !response.destroyed) {
        const piece = bytes.subarray(offset, offset + 64 * 1024);
        offset += piece.byteLength;
        bytesSent += piece.byteLength;
        if (!response.write(piece)) {
          response.once('drain', writeMore);
          return;
        }
      }
      if (!response.destroyed) {
        response.end();
        downloads.add(filePath);
      }
    };
    writeMore();
  }

  function addFile(path: string, bytes: Uint8Array): string {
    const filePath = normalisePath(path);
    files.set(filePath, bytes);
    return `${url}${downloadPrefix}${filePath}`;
  }

  function addModelVersion(spec: FakeModelVersion): void {
    const specFiles = spec.files ?? [];
    const anyPrimary = specFiles.some((file) => file.primary !== undefined);
    const filesJson = specFiles.map((file, index) => {
      const downloadUrl = file.bytes
        ? addFile(`/models/${encodeURIComponent(String(spec.versionId))}/${encodeURIComponent(file.name)}`, file.bytes)
        : `${url}${downloadPrefix}/models/${encodeURIComponent(String(spec.versionId))}/${encodeURIComponent(file.name)}`;
      const sha256 = file.sha256 ?? (file.bytes && createHash('sha256').update(file.bytes).digest('hex').toUpperCase());
      return {
        id: index + 1,
        name: file.name,
        sizeKB: file.sizeKB ?? (file.bytes ? file.bytes.byteLength / 1024 : 1),
        type: file.type ?? 'Model',
        primary: anyPrimary ? file.primary === true : index === 0,
        metadata: { format: file.format ?? formatOfName(file.name), fp: null, size: null },
        pickleScanResult: file.pickleScanResult ?? 'Success',
        pickleScanMessage: 'No Pickle imports',
        virusScanResult: file.virusScanResult ?? 'Success',
        scannedAt: '2023-02-01T00:00:00.000Z',
        hashes: sha256 === undefined ? {} : { SHA256: sha256 },
        downloadUrl,
      };
    });
    const answer = {
      id: spec.versionId,
      modelId: spec.modelId,
      name: spec.versionName ?? 'v1.0',
      createdAt: '2023-02-01T00:00:00.000Z',
      baseModel: spec.baseModel,
      trainedWords: spec.trainedWords ?? [],
      model: { name: spec.name ?? `Model ${spec.modelId}`, type: spec.type, nsfw: false, poi: false },
      files: filesJson,
      images: [],
      downloadUrl: filesJson[0]?.downloadUrl,
    };
    answers.set(String(spec.versionId), Buffer.from(JSON.stringify(answer)));
  }

  return {
    url,
    storageUrl,
    addModelVersion,
    addFile,
    calls: {
      versionLookups: (versionId) => lookups.get(versionId === undefined ? undefined : String(versionId)),
      downloads: (path) => downloads.get(path === undefined ? undefined : normalisePath(path)),
      rangeReads: (path) => rangeReads.get(path === undefined ? undefined : normalisePath(path)),
      bytesSent: () => bytesSent,
    },
    requests,
    setBehaviour(update) {
      // An explicit undefined leaves the current value, so callers can spread optional settings.
      for (const [key, value] of Object.entries(update)) {
        if (value !== undefined) Object.assign(behaviour, { [key]: value });
      }
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await Promise.all(
        [registry, storage].map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
    },
  };
}
