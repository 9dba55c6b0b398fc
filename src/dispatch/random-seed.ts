import { randomFillSync } from 'node:crypto';

/**
 * Random seeds (0 to 2^52 − 1, so seed + i stays below 2^53) for tasks that sent none, drawn from a buffer refilled 8 KiB at a time: one
 * randomBytes call per task costs a system call and an OpenSSL fork check each, on the hot path.
 */
const pool = Buffer.alloc(8192);
let offset = pool.length;

export function randomSeed(): bigint {
  if (offset + 8 > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  // 52 bits: a JavaScript client reads every image seed (seed + i, i < 20) exactly (DESIGN §2). Clients may send any 64-bit seed.
  const seed = pool.readBigUInt64BE(offset) >> 12n;
  offset += 8;
  return seed;
}
