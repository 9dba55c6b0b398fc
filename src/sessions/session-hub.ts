import type { FastifyBaseLogger } from 'fastify';
import type { CancellationSource } from '../contracts/cancellation.js';
import type { Config } from '../config.js';
import type { SessionEvent, SessionStore, SessionTiming, TaskClaim } from './session-store.js';

/**
 * This replica's side of the WebSocket sessions: the sockets it holds, the tasks it runs for them, and where
 * each answer goes. An answer for a session whose socket is here is sent at once; any other — the socket
 * dropped, or the session was resumed on another replica — is held in the store, and whoever holds the
 * session's socket takes it from there exactly once. A dropped session's tasks keep running for the resume
 * window; then, if nobody took the session or the tasks back, they are cancelled.
 */

export interface SessionSocket {
  /** Sends a frame; false when the socket cannot take it now (closed, or its reader is too slow). */
  send(frame: string): boolean;
  /** Another socket resumed this session: this one is closed. */
  supersede(): void;
}

export interface SessionHub {
  open(principal: string, socket: SessionSocket): Promise<string>;
  /** Resumes a session: what finished while it was away is delivered. False when there is no such session. */
  resume(sessionId: string, principal: string, socket: SessionSocket): Promise<boolean>;
  detach(sessionId: string): void;
  /** Decides whether a task sent on a session runs, and remembers the ones that do. */
  claim(principal: string, taskUUID: string, sessionId: string, run: CancellationSource): Promise<TaskClaim>;
  /** An answer of a task (one frame). */
  deliver(principal: string, taskUUID: string, frame: string): void;
  /** The task has given every answer. */
  finish(principal: string, taskUUID: string): void;
  readonly attachedCount: number;
  readonly runningCount: number;
  close(): Promise<void>;
}

export interface SessionHubOptions {
  readonly store: SessionStore;
  readonly windowMs: number;
  /** How often the records of live sockets and running tasks are renewed. */
  readonly heartbeatMs: number;
  readonly logger: Pick<FastifyBaseLogger, 'warn'>;
}

interface Attachment {
  readonly principal: string;
  readonly socket: SessionSocket;
  readonly unsubscribe: () => void;
}

interface RunningTask {
  readonly principal: string;
  readonly taskUUID: string;
  /** The session whose socket sent it; its answers go to the session that owns it now. */
  owner: string;
  readonly run: CancellationSource;
}

/** A socket's or running task's record outlives its last renewal by this much; renewed three times as often. */
const LIVE_MS = 30_000;

export function sessionTiming(config: Config): SessionTiming {
  return { windowMs: config.websocket.resumeWindowMs, liveMs: LIVE_MS };
}

export function hubTiming(config: Config): Pick<SessionHubOptions, 'windowMs' | 'heartbeatMs'> {
  return { windowMs: config.websocket.resumeWindowMs, heartbeatMs: LIVE_MS / 3 };
}

export function createSessionHub(options: SessionHubOptions): SessionHub {
  const { store } = options;
  const attached = new Map<string, Attachment>();
  const running = new Map<string, RunningTask>();
  const windowTimers = new Set<NodeJS.Timeout>();
  const keyOf = (principal: string, taskUUID: string) => `${principal}\n${taskUUID}`;

  const failed = (what: string) => (error: unknown) => options.logger.warn({ err: error }, `session store: ${what} failed`);

  /** Sends a session's held answers for one task to its socket here, if it is here. */
  async function drain(sessionId: string, taskUUID: string): Promise<void> {
    const attachment = attached.get(sessionId);
    if (!attachment) return;
    const frames = await store.take(attachment.principal, taskUUID, sessionId);
    for (let index = 0; index < frames.length; index++) {
      const frame = frames[index]!;
      // A socket gone meanwhile: what it did not take is held again, in order.
      if (attached.get(sessionId) !== attachment || !attachment.socket.send(frame)) {
        for (const rest of frames.slice(index)) await store.hold(attachment.principal, taskUUID, rest);
        return;
      }
    }
  }

  async function drainAll(sessionId: string, principal: string): Promise<void> {
    const taskUUIDs = await store.tasksOf(sessionId, principal);
    await Promise.all(taskUUIDs.map((taskUUID) => drain(sessionId, taskUUID)));
  }

  function attach(sessionId: string, principal: string, socket: SessionSocket): void {
    attached.get(sessionId)?.socket.supersede();
    const unsubscribe = store.subscribe(sessionId, (event: SessionEvent) => {
      if (event.kind === 'held') void drain(sessionId, event.taskUUID).catch(failed('delivering held answers'));
      else if (attached.get(sessionId)?.socket === socket) {
        // Resumed elsewhere: this socket no longer holds the session.
        release(sessionId);
        socket.supersede();
      }
    });
    attached.set(sessionId, { principal, socket, unsubscribe });
  }

  function release(sessionId: string): Attachment | undefined {
    const attachment = attached.get(sessionId);
    if (!attachment) return undefined;
    attached.delete(sessionId);
    attachment.unsubscribe();
    return attachment;
  }

  /** At the end of the window, a dropped session's tasks are cancelled unless a live socket has them now. */
  function watchWindow(sessionId: string, principal: string): void {
    const timer = setTimeout(() => {
      windowTimers.delete(timer);
      void (async () => {
        for (const task of running.values()) {
          if (task.principal !== principal || task.owner !== sessionId) continue;
          const owner = (await store.ownerOf(principal, task.taskUUID)) ?? sessionId;
          if (attached.has(owner) || (await store.isAttached(owner, principal))) {
            task.owner = owner;
            continue;
          }
          task.run.cancel(new Error('the session was not resumed within its window'));
        }
      })().catch(failed('ending a session window'));
    }, options.windowMs);
    timer.unref();
    windowTimers.add(timer);
  }

  const heartbeat = setInterval(() => {
    const sessions = [...attached].map(([sessionId, { principal }]) => ({ sessionId, principal }));
    const tasks = [...running.values()].map(({ principal, taskUUID }) => ({ principal, taskUUID }));
    void store.heartbeat(sessions, tasks).catch(failed('heartbeat'));
  }, options.heartbeatMs);
  heartbeat.unref();

  return {
    async open(principal, socket) {
      const sessionId = await store.open(principal);
      attach(sessionId, principal, socket);
      return sessionId;
    },
    async resume(sessionId, principal, socket) {
      if (!(await store.resume(sessionId, principal))) return false;
      attach(sessionId, principal, socket);
      void drainAll(sessionId, principal).catch(failed('delivering on resume'));
      return true;
    },
    detach(sessionId) {
      const attachment = release(sessionId);
      if (!attachment) return;
      void store.detach(sessionId, attachment.principal).catch(failed('detaching'));
      watchWindow(sessionId, attachment.principal);
    },
    async claim(principal, taskUUID, sessionId, run) {
      const claim = await store.claimTask(principal, taskUUID, sessionId);
      const key = keyOf(principal, taskUUID);
      if (claim === 'new') running.set(key, { principal, taskUUID, owner: sessionId, run });
      else if (claim === 'moved') {
        const task = running.get(key);
        if (task) task.owner = sessionId;
        void drain(sessionId, taskUUID).catch(failed('delivering moved answers'));
      } else if (claim === 'owned') void drain(sessionId, taskUUID).catch(failed('delivering owned answers'));
      return claim;
    },
    deliver(principal, taskUUID, frame) {
      const task = running.get(keyOf(principal, taskUUID));
      const attachment = task && attached.get(task.owner);
      if (attachment && attachment.principal === principal && attachment.socket.send(frame)) return;
      void store.hold(principal, taskUUID, frame).catch(failed('holding an answer'));
    },
    finish(principal, taskUUID) {
      running.delete(keyOf(principal, taskUUID));
      void store.finishTask(principal, taskUUID).catch(failed('finishing a task'));
    },
    get attachedCount() {
      return attached.size;
    },
    get runningCount() {
      return running.size;
    },
    async close() {
      clearInterval(heartbeat);
      for (const timer of windowTimers) clearTimeout(timer);
      windowTimers.clear();
      for (const sessionId of [...attached.keys()]) release(sessionId);
      await store.close();
    },
  };
}
