import { stringify as stringifyLossless } from 'lossless-json';

/**
 * JSON for the wire. Seeds beyond 2^53 − 1 are bigints, and go out as JSON numbers with every digit, as
 * Runware sends them (DESIGN §2): JSON.stringify refuses a bigint, so only such rare answers take the
 * slower lossless writer. Everything else is plain JSON.stringify.
 */
export function toWireJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    return stringifyLossless(value) ?? 'null';
  }
}
