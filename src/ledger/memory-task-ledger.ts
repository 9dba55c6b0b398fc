import { LRUCache } from 'lru-cache';
import type { LedgerEntry, TaskLedger } from '../contracts/task-ledger.js';

/**
 * The ledger in this process, for a gateway without Redis: bounded by bytes (least recently written out —
 * inline images are large, and a busy gateway must not keep a day of them in its heap) and with the TTL. A
 * restart loses every record, and another replica never sees them; the README says so.
 */
export function createMemoryTaskLedger(options: { ttlSeconds: number; maxBytes?: number; clock?: () => number }): TaskLedger {
  const clock = options.clock ?? Date.now;
  const entries = new LRUCache<string, LedgerEntry>({
    maxSize: options.maxBytes ?? DEFAULT_MAX_BYTES,
    sizeCalculation: approximateBytes,
    ttl: options.ttlSeconds * 1000,
    ttlAutopurge: false,
  });
  const keyOf = (principal: string, taskUUID: string) => `${principal}\u0000${taskUUID}`;
  return {
    ttlSeconds: options.ttlSeconds,
    started(principal, taskUUID, taskType) {
      entries.set(keyOf(principal, taskUUID), { taskUUID, taskType, state: 'processing', results: [], errors: [], updatedAt: clock() });
    },
    async finished(principal, entry) {
      entries.set(keyOf(principal, entry.taskUUID), { ...entry, updatedAt: clock() });
    },
    async get(principal, taskUUID) {
      return entries.get(keyOf(principal, taskUUID));
    },
  };
}

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

/** What an entry holds, roughly: its images' inline data and URLs dominate; the rest is a few hundred bytes. */
function approximateBytes(entry: LedgerEntry): number {
  let bytes = 256 + entry.errors.length * 256;
  for (const result of entry.results) bytes += 256 + (result.imageBase64Data?.length ?? 0) + (result.imageDataURI?.length ?? 0) + (result.imageURL?.length ?? 0);
  return bytes;
}
