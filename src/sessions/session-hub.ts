import type { FastifyBaseLogger } from 'fastify';
import { WorkCancelled, type CancellationSource } from '../contracts/cancellation.js';
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
  /** Sends a frame; false when the socket cannot take it now (closed, or its reader is behind). */
  send(frame: string): boolean;
  /** False once the socket is closing: its session is detached. */
  readonly open: boolean;
  /** False while its reader is behind: answers wait in the store until the socket calls deliverHeld. */
  readonly ready: boolean;
  /** Another socket resumed this session: this one is closed. */
  supersede(): void;
}

export interface SessionHub {
  open(principal: string, socket: SessionSocket): Promise<string>;
  /** Resumes a session; false when there is no such session of this principal. */
  resume(sessionId: string, principal: string, socket: SessionSocket): Promise<boolean>;
  /**
   * Delivers what the session's tasks gave while its socket could not take it: after a resume (once the
   * transport has answered it), and when a reader that fell behind has caught up.
   */
  deliverHeld(sessionId: string): void;
  detach(sessionId: string): void;
  /** Decides whether a task sent on a session runs, and remembers the ones that do. */
  claim(principal: string, taskUUID: string, sessionId: string, run: CancellationSource): Promise<TaskClaim>;
  /** An answer of a task (one frame). */
  deliver(principal: string, taskUUID: string, frame: string): void;
  /** The task has given every answer. */
  finish(principal: string, taskUUID: string): void;
  readonly attachedCount: number;
  readonly runningCount: number;
  /** Detached sessions whose tasks run here until their resume window ends. */
  readonly watchedCount: number;
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

  /**
   * Sends one frame to the session's socket here. A socket that cannot take it (closing, or too slow) is
   * done: the session is detached at once, so what follows is held for a resume instead of tried again.
   */
  function sendTo(sessionId: string, attachment: Attachment, frame: string): boolean {
    if (attached.get(sessionId) !== attachment) return false;
    if (attachment.socket.send(frame)) return true;
    if (!attachment.socket.open) detach(sessionId);
    return false;
  }

  /** Sends a session's held answers for one task to its socket here, if it is here and keeping up. */
  async function drain(sessionId: string, taskUUID: string): Promise<void> {
    const attachment = attached.get(sessionId);
    if (!attachment?.socket.ready) return;
    const frames = await store.take(attachment.principal, taskUUID, sessionId);
    for (let index = 0; index < frames.length; index++) {
      // A socket gone meanwhile: what it did not take is held again, in order.
      if (!sendTo(sessionId, attachment, frames[index]!)) {
        for (const rest of frames.slice(index)) await store.hold(attachment.principal, taskUUID, rest);
        return;
      }
    }
  }

  function detach(sessionId: string): void {
    const attachment = release(sessionId);
    if (!attachment) return;
    void store.detach(sessionId, attachment.principal).catch(failed('detaching'));
    watchWindow(sessionId, attachment.principal);
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
    // Nothing of the session runs here: there is nothing to end when its window closes, and a timer per
    // closed socket would hold memory for the whole window at a high rate of sockets.
    if (!ownsRunningTask(sessionId, principal)) return;
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
          task.run.cancel(new WorkCancelled('sessionExpired', 'the session was not resumed within its window'));
        }
      })().catch(failed('ending a session window'));
    }, options.windowMs);
    timer.unref();
    windowTimers.add(timer);
  }

  function ownsRunningTask(sessionId: string, principal: string): boolean {
    for (const task of running.values()) if (task.owner === sessionId && task.principal === principal) return true;
    return false;
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
      return true;
    },
    deliverHeld(sessionId) {
      const attachment = attached.get(sessionId);
      if (attachment) void drainAll(sessionId, attachment.principal).catch(failed('delivering on resume'));
    },
    detach,
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
      if (task && attachment && attachment.principal === principal && sendTo(task.owner, attachment, frame)) return;
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
    get watchedCount() {
      return windowTimers.size;
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
