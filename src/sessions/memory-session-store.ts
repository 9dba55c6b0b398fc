import { randomUUID } from 'node:crypto';
import type { SessionEvent, SessionStore, SessionTiming, TaskClaim } from './session-store.js';

/**
 * The session store of a single replica (no REDIS_URL, or while Redis is down): the same rules as the
 * shared one, in maps whose entries expire by their deadlines. A restart loses every session.
 */

interface SessionRecord {
  readonly principal: string;
  attached: boolean;
  /** While attached: the last heartbeat plus liveMs. Detached: the end of the resume window. */
  until: number;
  readonly tasks: Set<string>;
}

interface TaskRecord {
  owner: string;
  running: boolean;
  until: number;
  held: string[];
}

export function createMemorySessionStore(timing: SessionTiming, clock: () => number = Date.now): SessionStore {
  const sessions = new Map<string, SessionRecord>();
  const tasks = new Map<string, TaskRecord>();
  const listeners = new Map<string, Set<(event: SessionEvent) => void>>();
  const taskKey = (principal: string, taskUUID: string) => `${principal}:${taskUUID}`;

  const sessionOf = (sessionId: string, principal: string): SessionRecord | undefined => {
    const record = sessions.get(sessionId);
    if (!record) return undefined;
    if (record.until < clock()) {
      sessions.delete(sessionId);
      return undefined;
    }
    return record.principal === principal ? record : undefined;
  };
  const taskOf = (key: string): TaskRecord | undefined => {
    const record = tasks.get(key);
    if (record && record.until < clock()) {
      tasks.delete(key);
      return undefined;
    }
    return record;
  };
  const emit = (sessionId: string, event: SessionEvent) => {
    for (const listener of listeners.get(sessionId) ?? []) listener(event);
  };
  // Expired entries are also swept now and then, so a replica that sees no further lookups frees them.
  const sweeper = setInterval(() => {
    const now = clock();
    for (const [id, record] of sessions) if (record.until < now) sessions.delete(id);
    for (const [key, record] of tasks) if (record.until < now) tasks.delete(key);
  }, Math.max(1000, Math.min(timing.windowMs, 30_000)));
  sweeper.unref();

  return {
    async open(principal) {
      const sessionId = randomUUID();
      sessions.set(sessionId, { principal, attached: true, until: clock() + timing.liveMs, tasks: new Set() });
      return sessionId;
    },
    async resume(sessionId, principal) {
      const record = sessionOf(sessionId, principal);
      if (!record) return false;
      if (record.attached) emit(sessionId, { kind: 'taken' });
      record.attached = true;
      record.until = clock() + timing.liveMs;
      return true;
    },
    async detach(sessionId, principal) {
      const record = sessionOf(sessionId, principal);
      if (!record) return;
      record.attached = false;
      record.until = clock() + timing.windowMs;
    },
    async isAttached(sessionId, principal) {
      return sessionOf(sessionId, principal)?.attached ?? false;
    },
    async claimTask(principal, taskUUID, sessionId): Promise<TaskClaim> {
      const key = taskKey(principal, taskUUID);
      const record = taskOf(key);
      const session = sessionOf(sessionId, principal);
      if (!record || (!record.running && record.held.length === 0)) {
        tasks.set(key, { owner: sessionId, running: true, until: clock() + timing.liveMs, held: [] });
        session?.tasks.add(taskUUID);
        return 'new';
      }
      if (record.owner === sessionId) return 'owned';
      if (sessionOf(record.owner, principal)?.attached) return 'busy';
      record.owner = sessionId;
      session?.tasks.add(taskUUID);
      return 'moved';
    },
    async finishTask(principal, taskUUID) {
      const record = taskOf(taskKey(principal, taskUUID));
      if (!record) return;
      record.running = false;
      record.until = clock() + timing.windowMs;
    },
    async ownerOf(principal, taskUUID) {
      return taskOf(taskKey(principal, taskUUID))?.owner;
    },
    async hold(principal, taskUUID, frame) {
      const record = taskOf(taskKey(principal, taskUUID));
      if (!record) return;
      record.held.push(frame);
      emit(record.owner, { kind: 'held', taskUUID });
    },
    async take(principal, taskUUID, sessionId) {
      const record = taskOf(taskKey(principal, taskUUID));
      if (!record || record.owner !== sessionId || record.held.length === 0) return [];
      const frames = record.held;
      record.held = [];
      return frames;
    },
    async tasksOf(sessionId, principal) {
      return [...(sessionOf(sessionId, principal)?.tasks ?? [])];
    },
    async heartbeat(live, running) {
      const until = clock() + timing.liveMs;
      for (const { sessionId, principal } of live) {
        const record = sessionOf(sessionId, principal);
        if (record?.attached) record.until = until;
      }
      for (const { principal, taskUUID } of running) {
        const record = taskOf(taskKey(principal, taskUUID));
        if (record?.running) record.until = until;
      }
    },
    subscribe(sessionId, listener) {
      let set = listeners.get(sessionId);
      if (!set) listeners.set(sessionId, (set = new Set()));
      set.add(listener);
      return () => {
        set.delete(listener);
        if (set.size === 0) listeners.delete(sessionId);
      };
    },
    async close() {
      clearInterval(sweeper);
      listeners.clear();
    },
  };
}
