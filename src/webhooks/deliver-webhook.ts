import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { Agent, request } from 'undici';
import { startAttempt } from '../http/attempt-deadline.js';
import { parseRetryAfterMs } from '../http/retry-policy.js';
import { checkWebhookTarget, resolveWebhookHost, type WebhookLookup, type WebhookTargetPolicy } from './webhook-target.js';

/**
 * One attempt at POSTing a task's results to the client's webhook URL. The target is checked before
 * every connection (first URL and each redirect) and again inside the connection's own DNS lookup, so a
 * name that resolves to a public address for the check and a private one for the connect (DNS
 * rebinding) is still refused. Retrying is the caller's business; the outcome says whether it may.
 */

export interface WebhookDeliveryOptions {
  readonly policy: WebhookTargetPolicy;
  /** Bounds one attempt: DNS, every redirect and the response. */
  readonly timeoutMs: number;
  readonly maxRedirects: number;
  /** Injected by tests; the system resolver otherwise. */
  readonly lookup?: WebhookLookup;
}

export type WebhookAttemptOutcome =
  | { readonly ok: true; readonly status: number; readonly url: string }
  | {
      readonly ok: false;
      readonly status?: number;
      readonly reason: string;
      readonly retryable: boolean;
      /** Where the failure happened, as origin and path only: a webhook's query often carries a token. */
      readonly url: string;
      /** The receiver's Retry-After, where it sent one. */
      readonly retryAfterMs?: number;
    };

export interface WebhookDelivery {
  deliver(url: string, body: string, headers: Record<string, string>): Promise<WebhookAttemptOutcome>;
  close(): Promise<void>;
}

const redirectStatuses: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** An error page is read this far and no further (undici then closes the connection). */
const maxDiscardedBytes = 64 * 1024;
const forbiddenCode = 'ERR_WEBHOOK_TARGET_FORBIDDEN';

/** Raised inside the connection's lookup; undici rejects the request with it unchanged. */
class ForbiddenTargetError extends Error {
  override readonly name = 'ForbiddenTargetError';
  readonly code = forbiddenCode;
}

export function createWebhookDelivery(options: WebhookDeliveryOptions): WebhookDelivery {
  const { policy, lookup } = options;
  // undici's connector spreads `connect` into net.connect / tls.connect, lookup included
  // (lib/core/connect.js). net.connect skips the lookup for IP literals: checkWebhookUrl judges those.
  const agent = new Agent({ connect: { lookup: guardedLookup(policy, lookup) } });

  async function deliver(url: string, body: string, headers: Record<string, string>): Promise<WebhookAttemptOutcome> {
    const deadline = startAttempt(options.timeoutMs, undefined);
    const sendHeaders: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'clipgate-webhooks' };
    for (const [name, value] of Object.entries(headers)) sendHeaders[name.toLowerCase()] = value;
    let shownUrl = shownText(url);
    try {
      let checked = await withinDeadline(checkWebhookTarget(url, policy, lookup), deadline.signal);
      for (let redirects = 0; ; redirects += 1) {
        if (!checked.ok) {
          const reason = redirects === 0 ? checked.reason : `redirect to ${shownUrl} refused: ${checked.reason}`;
          return { ok: false, reason, retryable: checked.unresolved === true, url: shownUrl };
        }
        const current = checked.url;
        shownUrl = shown(current);
        // No redirect interceptor on the agent: undici follows nothing by itself.
        const response = await request(current, { dispatcher: agent, method: 'POST', headers: sendHeaders, body, signal: deadline.signal });
        const { statusCode } = response;
        // Consumed (up to a bound) so the connection can go back to the pool; what it says is not used.
        await response.body.dump({ limit: maxDiscardedBytes }).catch(() => undefined);
        if (statusCode >= 200 && statusCode < 300) return { ok: true, status: statusCode, url: shownUrl };
        if (redirectStatuses.has(statusCode)) {
          const location = firstHeader(response.headers.location);
          if (location === undefined || location === '') {
            return { ok: false, status: statusCode, reason: `${shownUrl} answered ${statusCode} without a Location`, retryable: false, url: shownUrl };
          }
          if (redirects >= options.maxRedirects) {
            return { ok: false, status: statusCode, reason: `${shownUrl} redirected more than ${options.maxRedirects} times`, retryable: false, url: shownUrl };
          }
          let next: URL;
          try {
            next = new URL(location, current);
          } catch {
            return { ok: false, status: statusCode, reason: `${shownUrl} redirected to "${location}", which is not a URL`, retryable: false, url: shownUrl };
          }
          // Every status re-POSTs the same body, 301/302/303 included: a receiver that moves its
          // webhook wants the results at the new place, and a GET there would lose them. The headers
          // travel too, since the signature is over the body, not the URL.
          shownUrl = shown(next);
          checked = await withinDeadline(checkWebhookTarget(next.href, policy, lookup), deadline.signal);
          continue;
        }
        const retryable = statusCode >= 500 || statusCode === 408 || statusCode === 429;
        const retryAfterMs = retryable ? parseRetryAfterMs(response.headers['retry-after']) : undefined;
        return {
          ok: false,
          status: statusCode,
          reason: `${shownUrl} answered ${statusCode}`,
          retryable,
          url: shownUrl,
          ...(retryAfterMs !== undefined && { retryAfterMs }),
        };
      }
    } catch (error) {
      if (error instanceof ForbiddenTargetError) return { ok: false, reason: error.message, retryable: false, url: shownUrl };
      // Timeouts and network errors; anything else (a bug) is thrown from here.
      return { ok: false, reason: `${shownUrl}: ${deadline.failureOf(error).description}`, retryable: true, url: shownUrl };
    } finally {
      deadline.finish();
    }
  }

  return { deliver, close: () => agent.close() };
}

/**
 * The connection's own DNS lookup: the same judgement as checkWebhookTarget, on the answer the socket
 * actually connects to. Node asks with `all: true` when it races address families (autoSelectFamily).
 */
function guardedLookup(policy: WebhookTargetPolicy, lookup: WebhookLookup | undefined): LookupFunction {
  return (hostname, lookupOptions, callback) => {
    resolveWebhookHost(hostname, policy, lookup).then(
      (resolved) => {
        if (!resolved.ok) {
          const error = resolved.unresolved ? Object.assign(new Error(resolved.reason), { code: 'ENOTFOUND' }) : new ForbiddenTargetError(resolved.reason);
          callback(error, '');
          return;
        }
        const family = lookupOptions.family === 4 || lookupOptions.family === 'IPv4' ? 4 : lookupOptions.family === 6 || lookupOptions.family === 'IPv6' ? 6 : 0;
        const addresses: LookupAddress[] = resolved.addresses.filter((entry) => family === 0 || entry.family === family);
        const first = addresses[0];
        if (first === undefined) {
          callback(Object.assign(new Error(`webhookURL host "${hostname}" has no IPv${family} address`), { code: 'ENOTFOUND' }), '');
        } else if (lookupOptions.all) {
          callback(null, addresses);
        } else {
          callback(null, first.address, first.family);
        }
      },
      (error: unknown) => callback(error instanceof Error ? error : new Error(String(error)), ''),
    );
  };
}

/** A DNS lookup cannot be cancelled, but the attempt need not wait for it past its deadline. */
function withinDeadline<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** For messages and outcomes: query strings of webhook URLs are often credentials. */
function shown(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

function shownText(url: string): string {
  try {
    return shown(new URL(url));
  } catch {
    return url;
  }
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
