import { z } from 'zod';

/**
 * Seeds are unsigned 64-bit integers. JSON numbers above 2^53 cannot be held by a JS number, so the body
 * parser hands them over as BigInt and clients may also send a decimal string; either way the seed is
 * kept exactly, as a BigInt, and never silently rounded.
 */
export const SEED_MAX = 2n ** 64n - 1n;

export const seedSchema = z
  .union([z.number(), z.string(), z.bigint()])
  .transform((value, context): bigint => {
    const seed = toSeed(value);
    if (seed === undefined) {
      context.addIssue({
        code: 'custom',
        message: `seed must be an integer from 0 to ${SEED_MAX} (a JSON number, or a decimal string for values above 2^53)`,
        params: { code: 'parameterOutOfRange', min: 0 },
      });
      return z.NEVER;
    }
    return seed;
  })
  .meta({
    description:
      'Unsigned 64-bit seed, 0 to 18446744073709551615. Values above 2^53 may be sent as a JSON number or a decimal string; they are never rounded.',
  });

function toSeed(value: number | string | bigint): bigint | undefined {
  let seed: bigint;
  if (typeof value === 'bigint') seed = value;
  else if (typeof value === 'number') {
    // A number that reached us as a JS number is exact only up to 2^53; larger ones arrive as BigInt.
    if (!Number.isSafeInteger(value)) return undefined;
    seed = BigInt(value);
  } else {
    if (!/^\d{1,20}$/.test(value)) return undefined;
    seed = BigInt(value);
  }
  return seed >= 0n && seed <= SEED_MAX ? seed : undefined;
}

/**
 * A seed as the client reads it: a JSON number with every digit (a bigint beyond 2^53 − 1, which the wire
 * writer spells out exactly), or its decimal string when the task sent its seed as a string.
 */
export function seedToJson(seed: bigint, asText = false): number | bigint | string {
  if (asText) return seed.toString();
  return seed <= MAX_SAFE_SEED ? Number(seed) : seed;
}

/**
 * seedToJson for a seed already in decimal (as workers report it), without the BigInt round trip for the
 * seeds nearly every image has: up to 15 digits it is below 2^53; from 17 digits on (no leading zero) above.
 */
export function seedTextToJson(decimal: string, asText = false): number | bigint | string {
  if (asText) return decimal[0] === '0' && decimal.length > 1 ? BigInt(decimal).toString() : decimal;
  if (decimal.length <= 15) return Number(decimal);
  if (decimal[0] !== '0') return decimal.length > 16 || decimal > MAX_SAFE_DECIMAL ? BigInt(decimal) : Number(decimal);
  return seedToJson(BigInt(decimal));
}

/** Random seeds stay at or below this, so that a JavaScript client reads them exactly (DESIGN §2). */
export const MAX_SAFE_SEED = BigInt(Number.MAX_SAFE_INTEGER);
const MAX_SAFE_DECIMAL = String(Number.MAX_SAFE_INTEGER);
