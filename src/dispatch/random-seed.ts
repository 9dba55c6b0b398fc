import { randomFillSync } from 'node:crypto';

/**
 * Random 64-bit seeds for tasks that sent none, drawn from a buffer refilled 8 KiB at a time: one
 * randomBytes call per task costs a system call and an OpenSSL fork check each, on the hot path.
 */
const pool = Buffer.alloc(8192);
let offset = pool.length;

export function randomSeed(): bigint {
  if (offset + 8 > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const seed = pool.readBigUInt64BE(offset);
  offset += 8;
  return seed;
}
