import { LRUCache } from 'lru-cache';
import type { LedgerEntry, TaskLedger } from '../contracts/task-ledger.js';

/**
 * The ledger in this process, for a gateway without Redis: bounded (least recently written out) and with the
 * TTL. A restart loses every record, and another replica never sees them; the README says so.
 */
export function createMemoryTaskLedger(options: { ttlSeconds: number; maxEntries?: number; clock?: () => number }): TaskLedger {
  const clock = options.clock ?? Date.now;
  const entries = new LRUCache<string, LedgerEntry>({ max: options.maxEntries ?? 100_000, ttl: options.ttlSeconds * 1000, ttlAutopurge: false });
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
