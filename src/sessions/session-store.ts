/**
 * What every replica shares about WebSocket sessions (DESIGN §2): which sessions exist and whose they are,
 * which session each task's answers belong to, and the answers that finished while no socket of that
 * session was there to take them. In Redis when REDIS_URL is set, so a client that drops may resume on any
 * replica; in process otherwise.
 *
 * Tasks are keyed by their principal and taskUUID: a client that reconnects without its session (a new
 * connectionSessionUUID) and sends the same task again gets that task's answers, not a second generation.
 */

export type TaskClaim =
  /**
   * Run it; this session owns its answers. Nobody has the task, or it finished and every answer was delivered
   * (a task sent again after that — a retry after a failure, an answer lost with a dropped socket — runs again).
   */
  | 'new'
  /** This session already owns it, still running or with answers waiting: they come here; do not run it again. */
  | 'owned'
  /** Its session went away while it ran or with answers waiting: the task and those answers now belong to this session. */
  | 'moved'
  /** Another live socket of the same key owns it. */
  | 'busy';

export interface SessionTiming {
  /** How long a session, a finished task and its undelivered answers are kept after the socket is gone. */
  readonly windowMs: number;
  /** Records of a live socket or a running task outlive their last heartbeat by this much (a replica that dies lets go). */
  readonly liveMs: number;
}

export interface SessionStore {
  /** A new session of `principal`, attached to a socket of this replica. */
  open(principal: string): Promise<string>;
  /** Attaches to an existing session of `principal`; false when it is unknown, expired or someone else's. */
  resume(sessionId: string, principal: string): Promise<boolean>;
  /** The socket went away: the session is kept for the window, for a resume. */
  detach(sessionId: string, principal: string): Promise<void>;
  /** Whether a socket holds the session now (on any replica). */
  isAttached(sessionId: string, principal: string): Promise<boolean>;

  claimTask(principal: string, taskUUID: string, sessionId: string): Promise<TaskClaim>;
  /** The task has given all its answers; its record (and what is undelivered) is kept for the window. */
  finishTask(principal: string, taskUUID: string): Promise<void>;
  /** The session that owns the task's answers now; undefined when the task is unknown. */
  ownerOf(principal: string, taskUUID: string): Promise<string | undefined>;
  /** Keeps an answer for the owner and tells the owner's replica; for answers no local socket could take. */
  hold(principal: string, taskUUID: string, frame: string): Promise<void>;
  /** Takes (once, atomically) the task's held answers, if `sessionId` owns the task. */
  take(principal: string, taskUUID: string, sessionId: string): Promise<string[]>;
  /** The taskUUIDs whose answers belong to the session. */
  tasksOf(sessionId: string, principal: string): Promise<string[]>;

  /** Renews the records of this replica's live sockets and running tasks. */
  heartbeat(sessions: readonly { sessionId: string; principal: string }[], tasks: readonly { principal: string; taskUUID: string }[]): Promise<void>;
  /** Tells the replica holding the session's socket that answers were held for it, or that another socket resumed it. */
  subscribe(sessionId: string, listener: (event: SessionEvent) => void): () => void;
  close(): Promise<void>;
}

export type SessionEvent = { readonly kind: 'held'; readonly taskUUID: string } | { readonly kind: 'taken' };
