import { createHash } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { getWithin, startAttempt, type AttemptDeadline } from '../http/attempt-deadline.js';
import { describeGiveUp, parseRetryAfterMs, withRetries, type AttemptOutcome } from '../http/retry-policy.js';

/**
 * Downloads one embedding file (DESIGN §5): size-capped, hashed while it streams, verified against the
 * registry's SHA-256. Redirects are followed here rather than by undici, because Civitai's download URL
 * answers 302 to a storage host and the API token must not travel along.
 */

export type DownloadProblem = 'notFound' | 'tooLarge' | 'checksumMismatch' | 'unavailable';

export class DownloadError extends Error {
  override readonly name = 'DownloadError';
  constructor(
    message: string,
    readonly problem: DownloadProblem,
  ) {
    super(message);
  }
}

export interface DownloadOptions {
  readonly maxBytes: number;
  /** Hex, any case. */
  readonly expectedSha256?: string | undefined;
  /** Bounds one attempt: every redirect and the whole body. */
  readonly timeoutMs: number;
  /** Sent only to this origin, never to a redirect target elsewhere. */
  readonly credentials?: { readonly origin: string; readonly token: string } | undefined;
  readonly dispatcher?: Dispatcher;
  /** Default 3. */
  readonly maxAttempts?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  /** The caller's abort rejects with the signal's reason and is never retried. */
  readonly signal?: AbortSignal;
  /**
   * Only the first this many bytes: asked for with `Range`, and read no further from a server that ignores
   * it and sends the whole file (the connection is closed there). No checksum: a prefix has none to check.
   */
  readonly prefixBytes?: number;
}

export interface DownloadedFile {
  readonly bytes: Uint8Array;
  /** Lower-case hex; of the bytes read (with prefixBytes, of the prefix). */
  readonly sha256: string;
  /** With prefixBytes: whether the server honoured the range (206) rather than sending the file (200). */
  readonly ranged?: boolean;
}

const maxRedirects = 5;
const redirectStatuses: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

export async function downloadFile(url: string, options: DownloadOptions): Promise<DownloadedFile> {
  const start = httpUrl(url);
  const outcome = await withRetries(() => attemptDownload(start, options), {
    maxAttempts: options.maxAttempts ?? 3,
    sleep: options.sleep,
    random: options.random,
    signal: options.signal,
  });
  if (outcome.kind === 'done') return outcome.value;
  throw new DownloadError(`could not download ${shown(start)}: ${describeGiveUp(outcome)}`, 'unavailable');
}

/**
 * One attempt from the first URL: a retry starts over from the registry, because the storage URL it
 * redirected to may be signed and short-lived.
 */
async function attemptDownload(start: URL, options: DownloadOptions): Promise<AttemptOutcome<DownloadedFile>> {
  const deadline = startAttempt(options.timeoutMs, options.signal);
  const credentialOrigin = options.credentials && new URL(options.credentials.origin).origin;
  try {
    let current = start;
    for (let redirects = 0; ; redirects += 1) {
      const headers: Record<string, string> = {};
      if (options.credentials && current.origin === credentialOrigin) headers.authorization = `Bearer ${options.credentials.token}`;
      if (options.prefixBytes !== undefined) headers.range = `bytes=0-${options.prefixBytes - 1}`;
      const sent = await getWithin(deadline, current, headers, options.dispatcher);
      if (sent.kind === 'transient') return sent;
      const { response } = sent;
      const { statusCode, body } = response;
      if (statusCode >= 200 && statusCode < 300 && options.prefixBytes !== undefined) {
        return await readPrefix(body, options.prefixBytes, statusCode === 206, deadline);
      }
      if (statusCode >= 200 && statusCode < 300) {
        const declared = Number(firstHeader(response.headers['content-length']));
        if (declared > options.maxBytes) {
          // Destroyed unread (the connection closes), with the error it emits then expected and ignored.
          body.on('error', () => undefined).destroy();
          throw tooLarge(current, options.maxBytes, `it declares ${declared} bytes`);
        }
        return await readCapped(body, current, options, deadline);
      }
      // Consumed so the connection goes back to the pool; a large error page is cut off by undici.
      await body.dump().catch(() => undefined);
      if (redirectStatuses.has(statusCode)) {
        if (redirects >= maxRedirects) throw unavailable(`${shown(start)} redirected more than ${maxRedirects} times`);
        const location = firstHeader(response.headers.location);
        if (!location) throw unavailable(`${shown(current)} answered ${statusCode} without a Location`);
        current = httpUrl(location, current);
        continue;
      }
      if (statusCode === 404 || statusCode === 410) {
        throw new DownloadError(`${shown(current)} answered ${statusCode}: the file is not there`, 'notFound');
      }
      if (statusCode === 429 || statusCode >= 500) {
        return {
          kind: 'transient',
          failure: { description: `${shown(current)} answered ${statusCode}`, status: statusCode, retryAfterMs: parseRetryAfterMs(response.headers['retry-after']) },
        };
      }
      const advice = statusCode === 401 || statusCode === 403 ? ': the file may need an API token (CIVITAI_TOKEN)' : '';
      throw unavailable(`${shown(current)} answered ${statusCode}${advice}`);
    }
  } finally {
    deadline.finish();
  }
}

/** Streams the body through SHA-256, holding at most maxBytes: the count is checked before a chunk is kept. */
async function readCapped(
  body: Dispatcher.ResponseData['body'],
  url: URL,
  options: DownloadOptions,
  deadline: AttemptDeadline,
): Promise<AttemptOutcome<DownloadedFile>> {
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length > options.maxBytes) break;
      hash.update(chunk);
      chunks.push(chunk);
    }
  } catch (error) {
    return { kind: 'transient', failure: deadline.failureOf(error) };
  }
  if (length > options.maxBytes) {
    // Leaving the loop early destroyed the body: the rest is never read.
    throw tooLarge(url, options.maxBytes, 'it sent more');
  }
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  const sha256 = hash.digest('hex');
  const expected = options.expectedSha256?.trim().toLowerCase();
  if (expected !== undefined && expected !== sha256) {
    throw new DownloadError(`${shown(url)} has SHA-256 ${sha256}, but the registry lists ${expected}`, 'checksumMismatch');
  }
  return { kind: 'done', value: { bytes, sha256 } };
}

/** The first `count` bytes of a body (fewer where the file is shorter); the rest is never read. */
async function readPrefix(
  body: Dispatcher.ResponseData['body'],
  count: number,
  ranged: boolean,
  deadline: AttemptDeadline,
): Promise<AttemptOutcome<DownloadedFile>> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= count) break;
    }
  } catch (error) {
    return { kind: 'transient', failure: deadline.failureOf(error) };
  }
  const bytes = Buffer.concat(chunks).subarray(0, count);
  return { kind: 'done', value: { bytes: new Uint8Array(bytes), sha256: createHash('sha256').update(bytes).digest('hex'), ranged } };
}

/** Only http and https: a registry's Location must not send us to file:, data: or anything else. */
function httpUrl(text: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(text, base);
  } catch {
    throw unavailable(`"${text}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw unavailable(`${url.protocol} URLs are not downloaded (only http and https)`);
  return url;
}

/** For messages: storage URLs are often signed, and their query strings are credentials. */
function shown(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function tooLarge(url: URL, maxBytes: number, why: string): DownloadError {
  return new DownloadError(`${shown(url)} is larger than the ${maxBytes}-byte limit (EMBEDDING_MAX_BYTES): ${why}`, 'tooLarge');
}

function unavailable(message: string): DownloadError {
  return new DownloadError(message, 'unavailable');
}
