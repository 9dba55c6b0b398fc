import type { Dispatcher } from 'undici';
import { getWithin, startAttempt } from '../http/attempt-deadline.js';
import { describeGiveUp, parseRetryAfterMs, withRetries, type AttemptOutcome } from '../http/retry-policy.js';
import { modelVersionSchema, toRegistryModelVersion, type RegistryModelVersion } from './registry-mapping.js';

export type { RegistryFile, RegistryModelVersion } from './registry-mapping.js';

/**
 * Client of a Civitai-compatible registry (DESIGN §4): `GET {baseUrl}/api/v1/model-versions/{versionId}`.
 * It answers found or notFound, and throws RegistryUnavailableError for everything else, so the caller
 * can serve a stale record or a retryable `modelUnavailable` — never a 500.
 */

export type RegistryLookup = { readonly kind: 'found'; readonly version: RegistryModelVersion } | { readonly kind: 'notFound' };

/**
 * - `unauthorized`: 401/403, the token is missing or wrong (not retried).
 * - `rejected`: every other answer that retrying cannot change (4xx, a redirect).
 * - `unavailable`: 429, 5xx, timeouts or connection errors until the attempts ran out, or a Retry-After
 *   longer than clipgate waits.
 * - `unexpectedAnswer`: a success whose body is not the JSON we know (not retried).
 */
export type RegistryProblem = 'unauthorized' | 'rejected' | 'unavailable' | 'unexpectedAnswer';

export class RegistryUnavailableError extends Error {
  override readonly name = 'RegistryUnavailableError';
  constructor(
    message: string,
    readonly problem: RegistryProblem,
    /** The registry's last HTTP status; undefined after a timeout or connection error. */
    readonly status: number | undefined,
  ) {
    super(message);
  }
}

export interface CivitaiRegistry {
  /** A caller's abort rejects with the signal's reason and is never retried. */
  getModelVersion(versionId: string, signal?: AbortSignal): Promise<RegistryLookup>;
}

export interface CivitaiRegistryOptions {
  readonly baseUrl: string;
  readonly token?: string | undefined;
  /** Bounds one attempt, answer body included. */
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly dispatcher?: Dispatcher;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

/**
 * A model-version answer is a few kilobytes (tens with many files); a bigger one is not the answer we
 * asked for, and reading it whole would let a broken registry fill our memory.
 */
const maxAnswerBytes = 4 * 1024 * 1024;

export function createCivitaiRegistry(options: CivitaiRegistryOptions): CivitaiRegistry {
  const base = options.baseUrl.replace(/\/+$/, '');
  // For messages: never the path or credentials a configured URL might carry.
  const registryName = `the model registry at ${new URL(base).origin}`;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.token) headers.authorization = `Bearer ${options.token}`;

  async function attemptLookup(url: string, versionId: string, signal: AbortSignal | undefined): Promise<AttemptOutcome<RegistryLookup>> {
    const deadline = startAttempt(options.timeoutMs, signal);
    try {
      const sent = await getWithin(deadline, url, headers, options.dispatcher);
      if (sent.kind === 'transient') return sent;
      const { response } = sent;
      const { statusCode, body } = response;
      if (statusCode >= 200 && statusCode < 300) {
        let text: string;
        try {
          text = await readAnswer(body);
        } catch (error) {
          if (error instanceof AnswerTooLargeError) {
            throw unexpectedAnswer(versionId, `is larger than ${maxAnswerBytes} bytes`);
          }
          return { kind: 'transient', failure: deadline.failureOf(error) };
        }
        return { kind: 'done', value: { kind: 'found', version: parseAnswer(text, versionId) } };
      }
      // Consumed so the connection goes back to the pool; a large error page is cut off by undici.
      await body.dump().catch(() => undefined);
      if (statusCode === 404) return { kind: 'done', value: { kind: 'notFound' } };
      if (statusCode === 429 || statusCode >= 500) {
        return {
          kind: 'transient',
          failure: { description: `answered ${statusCode}`, status: statusCode, retryAfterMs: parseRetryAfterMs(response.headers['retry-after']) },
        };
      }
      if (statusCode === 401 || statusCode === 403) {
        const advice = options.token
          ? 'check that CIVITAI_TOKEN holds a valid API token with access to this model'
          : 'this model needs an API token: set CIVITAI_TOKEN';
        throw new RegistryUnavailableError(
          `${registryName} refused model version ${versionId} with ${statusCode}: ${advice}`,
          'unauthorized',
          statusCode,
        );
      }
      throw new RegistryUnavailableError(
        `${registryName} answered ${statusCode} for model version ${versionId}; check CIVITAI_BASE_URL`,
        'rejected',
        statusCode,
      );
    } finally {
      deadline.finish();
    }
  }

  function parseAnswer(text: string, versionId: string): RegistryModelVersion {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw unexpectedAnswer(versionId, 'is not JSON');
    }
    const parsed = modelVersionSchema.safeParse(json);
    if (!parsed.success) {
      const problems = parsed.error.issues.slice(0, 3).map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
      throw unexpectedAnswer(versionId, `is not a model version (${problems.join('; ')})`);
    }
    return toRegistryModelVersion(parsed.data, versionId);
  }

  function unexpectedAnswer(versionId: string, what: string): RegistryUnavailableError {
    return new RegistryUnavailableError(`unexpected answer: ${registryName}'s answer for model version ${versionId} ${what}`, 'unexpectedAnswer', undefined);
  }

  return {
    async getModelVersion(versionId, signal) {
      const url = `${base}/api/v1/model-versions/${encodeURIComponent(versionId)}`;
      const outcome = await withRetries(() => attemptLookup(url, versionId, signal), {
        maxAttempts: options.maxAttempts,
        sleep: options.sleep,
        random: options.random,
        signal,
      });
      if (outcome.kind === 'done') return outcome.value;
      throw new RegistryUnavailableError(
        `${registryName} could not answer for model version ${versionId}: ${describeGiveUp(outcome)}`,
        'unavailable',
        outcome.failure.status,
      );
    },
  };
}

class AnswerTooLargeError extends Error {}

async function readAnswer(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > maxAnswerBytes) {
      body.on('error', () => undefined).destroy();
      throw new AnswerTooLargeError();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length).toString('utf8');
}
