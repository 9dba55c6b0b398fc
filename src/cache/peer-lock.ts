import { randomUUID } from 'node:crypto';
import type { RedisConnection } from './redis-connection.js';

/**
 * Cross-replica dedupe of source fetches. One replica takes a Redis lock for a key (SET NX PX, renewed
 * while it works) and fetches; it stores the result in Redis and announces the key on a pub/sub channel.
 * The others wait for that announcement — one shared subscription per process, plus a slow re-check in
 * case an announcement is lost — instead of polling Redis in a loop or fetching themselves.
 */

const RELEASE_IF_OWNER = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const RENEW_IF_OWNER = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export interface Lease {
  release(): Promise<void>;
}

export interface PeerLocks {
  /** A lease when this replica should fetch; undefined when another replica holds the lock. Throws when Redis fails. */
  tryAcquire(key: string): Promise<Lease | undefined>;
  /** Tell waiting replicas that the holder is done with `key`: its result is in Redis, or it gave up. */
  announce(key: string): Promise<void>;
  /**
   * Resolves with what `check` finds once another replica announced `key` (or the slow re-check finds it);
   * with undefined when the lock is released without a result, or when `timeoutMs` passes first.
   */
  waitFor<T>(key: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T | undefined>;
  close(): Promise<void>;
}

export interface PeerLockOptions {
  readonly namespace: string;
  readonly lockTtlMs: number;
  /** Safety net for a lost announcement; slow on purpose. */
  readonly recheckMs: number;
}

export function createPeerLocks(redis: RedisConnection, options: PeerLockOptions): PeerLocks {
  const channel = `${options.namespace}:resolved`;
  const lockKey = (key: string) => `${options.namespace}:lock:${key}`;
  const wakeups = new Map<string, Set<() => void>>();

  const subscribe = () => {
    redis.subscriber.subscribe(channel).catch(() => undefined);
  };
  // (Re)subscribe whenever the subscriber connection becomes ready: at start-up Redis may still be down.
  redis.subscriber.on('ready', subscribe);
  if (redis.subscriber.status === 'ready') subscribe();
  const onMessage = (incoming: string, key: string) => {
    if (incoming !== channel) return;
    for (const wake of wakeups.get(key) ?? []) wake();
  };
  redis.subscriber.on('message', onMessage);

  return {
    async tryAcquire(key) {
      const token = randomUUID();
      const acquired = await redis.client.set(lockKey(key), token, 'PX', options.lockTtlMs, 'NX');
      if (acquired !== 'OK') return undefined;
      // Renew while the fetch runs, so a slow download does not let a second replica start the same one.
      const renewal = setInterval(() => {
        redis.client.eval(RENEW_IF_OWNER, 1, lockKey(key), token, options.lockTtlMs).catch(() => undefined);
      }, Math.max(100, Math.floor(options.lockTtlMs / 3)));
      renewal.unref();
      return {
        async release() {
          clearInterval(renewal);
          await redis.client.eval(RELEASE_IF_OWNER, 1, lockKey(key), token).catch(() => undefined);
        },
      };
    },

    async announce(key) {
      await redis.client.publish(channel, key);
    },

    async waitFor(key, check, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let woken = false;
      let wakeNow: (() => void) | undefined;
      const listeners = wakeups.get(key) ?? new Set<() => void>();
      wakeups.set(key, listeners);
      const listener = () => {
        // Remembered even while a check is running, so an announcement that lands then is not lost.
        woken = true;
        wakeNow?.();
      };
      listeners.add(listener);
      try {
        for (;;) {
          woken = false;
          // Checked once right away: the announcement may have come between the failed lock and now.
          const found = await check().catch(() => undefined);
          if (found !== undefined) return found;
          // The holder finished without a usable result (it failed, or kept a stale record): stop waiting.
          const held = await redis.client.exists(lockKey(key)).catch(() => 1);
          if (held === 0) return undefined;
          const remaining = deadline - Date.now();
          if (remaining <= 0) return undefined;
          if (woken) continue;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Math.min(remaining, options.recheckMs));
            wakeNow = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wakeNow = undefined;
        }
      } finally {
        listeners.delete(listener);
        if (listeners.size === 0) wakeups.delete(key);
      }
    },

    async close() {
      redis.subscriber.off('ready', subscribe);
      redis.subscriber.off('message', onMessage);
    },
  };
}
