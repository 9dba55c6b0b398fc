import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createCancellation } from '../../src/contracts/cancellation.js';
import { createMemorySessionStore } from '../../src/sessions/memory-session-store.js';
import { createSessionHub, type SessionSocket } from '../../src/sessions/session-hub.js';
import { until } from '../support/gateway.js';

/** The hub of one replica over the in-process store: what it keeps for sockets that are gone. */

const quiet = { warn: () => undefined };

function socket(): SessionSocket {
  return { send: () => true, open: true, ready: true, supersede: () => undefined };
}

describe('session hub', () => {
  it('watches a dropped session’s window only while a task of it runs here, and cancels that task when it ends', async () => {
    const hub = createSessionHub({ store: createMemorySessionStore({ windowMs: 300, liveMs: 1000 }), windowMs: 300, heartbeatMs: 1000, logger: quiet });
    // A thousand sockets that closed with nothing running leave nothing behind (the soak found timers piling up).
    for (let index = 0; index < 1000; index++) hub.detach(await hub.open('key', socket()));
    expect(hub.watchedCount).toBe(0);
    expect(hub.attachedCount).toBe(0);

    const sessionId = await hub.open('key', socket());
    const run = createCancellation();
    const cancelled: string[] = [];
    run.onCancel((reason) => cancelled.push(reason.message));
    expect(await hub.claim('key', randomUUID(), sessionId, run)).toBe('new');
    hub.detach(sessionId);
    expect(hub.watchedCount).toBe(1);
    await until(() => cancelled.length === 1, 5000);
    expect(hub.watchedCount).toBe(0);
    await hub.close();
  });
});
