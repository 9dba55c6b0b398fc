import { isInteger, isSafeNumber, parse as parseLossless } from 'lossless-json';
import { createError } from '../errors.js';
import { ClientRequestError } from './client-request-error.js';

/**
 * JSON bodies, read so that no integer is silently rounded: 64-bit seeds above 2^53 become BigInt.
 * JSON.parse is the fast path; the lossless parser runs only when the text has a run of 16 or more digits,
 * the only way to spell an integer beyond 2^53. Neither parser gives `__proto__` keys any power: they
 * become plain own properties, which validation then reports as unknown parameters.
 */
export function parseJsonBody(text: string): unknown {
  try {
    return /\d{16}/.test(text) ? parseLossless(text, undefined, parseNumber) : JSON.parse(text);
  } catch (error) {
    const reason =
      error instanceof RangeError ? 'it is nested too deeply to read' : error instanceof Error ? error.message : String(error);
    throw new ClientRequestError(
      createError('invalidJson', `The request body is not valid JSON: ${reason}. Send a JSON array of task objects.`),
    );
  }
}

function parseNumber(text: string): number | bigint {
  if (isSafeNumber(text)) return Number(text);
  return isInteger(text) ? BigInt(text) : Number(text);
}

const charsetParameter = /;\s*charset\s*=\s*"?([^";\s]*)/i;

/**
 * JSON is UTF-8 (RFC 8259 §8.1) and is read as such: a body labelled with another charset would be misread,
 * so it is refused rather than decoded as something it says it is not.
 */
export function refuseForeignCharset(contentType: string | undefined): void {
  const charset = charsetParameter.exec(contentType ?? '')?.[1]?.toLowerCase();
  if (charset === undefined || charset === 'utf-8' || charset === 'utf8') return;
  throw new ClientRequestError(
    createError('unsupportedMediaType', `JSON bodies are read as UTF-8; send Content-Type: application/json with charset=utf-8 or no charset, not charset=${charset.slice(0, 40)}.`),
  );
}
