import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { createCancellation, type CancellationSource } from '../../contracts/cancellation.js';
import type { Principal } from '../../contracts/principal.js';
import type { TaskResult } from '../../contracts/task-result.js';
import { createError, type ApiError, type ApiWarning } from '../../errors.js';
import type { SessionHub, SessionSocket } from '../../sessions/session-hub.js';
import type { TaskService } from '../../tasks/task-service.js';
import type { Admission, IncomingTask, TaskSink } from '../../tasks/task-type.js';
import { ClientRequestError } from '../client-request-error.js';
import { refusedWhileDraining, type Drain } from '../drain.js';
import { parseJsonBody } from '../json-body.js';
import type { FrameRateLimit } from '../rate-limits.js';
import { readTaskArray } from '../task-array.js';
import { toWireJson } from '../wire-json.js';

/**
 * One WebSocket in Runware's protocol (DESIGN §2): every client frame is a JSON array of tasks; the first
 * must authenticate (or resume a session); answers go back as `{data:[…]}` and `{errors:[…]}` frames, one
 * per image or per failed task, each carrying its taskUUID and taskType. A thin transport: the task service
 * runs the tasks, the session hub decides where their answers go.
 */

export interface SocketLimits {
  /** Frames above this get a payloadTooLarge error frame (ws closes the socket at twice this). */
  readonly maxFrameBytes: number;
  readonly maxTasksPerFrame: number;
  readonly maxTasksInFlight: number;
  /**
   * At most this much waits in a socket's send buffer (plus the frame that crossed it); further answers wait
   * in the session until the reader catches up.
   */
  readonly maxBufferedBytes: number;
  /** A reader that stays behind this long is cut off (1013); its answers wait for a resume. */
  readonly slowReaderMs: number;
  readonly idleMs: number;
  readonly maxSocketsPerKey: number;
}

/** Close codes, beside ws's own 1009 (frame above the hard limit). */
export const closeCodes = {
  invalidKey: 4401,
  idle: 4408,
  superseded: 4409,
  tooManyConnections: 4429,
  slowReader: 1013,
} as const;

export interface SocketDependencies {
  readonly service: TaskService;
  readonly hub: SessionHub;
  readonly drain: Drain;
  readonly limits: SocketLimits;
  /** Sockets each principal holds on this replica. */
  readonly socketsPerPrincipal: Map<string, number>;
  readonly logger: Pick<FastifyBaseLogger, 'debug' | 'warn'>;
  /** The upgrade request; once the socket authenticates, its principal is the socket's. */
  readonly request: FastifyRequest;
  /** Frames of tasks count against the key's rate limit, with its REST requests; absent without a limit. */
  readonly frameRateLimit?: FrameRateLimit;
}

type State = { readonly kind: 'anonymous' } | { readonly kind: 'authenticated'; readonly principal: Principal; readonly sessionId: string } | { readonly kind: 'closed' };

export class TaskSocket implements SessionSocket {
  private state: State = { kind: 'anonymous' };
  private inFlight = 0;
  private idleTimer: NodeJS.Timeout;
  /** Frames are taken in order until each has passed authentication and admission; running does not wait. */
  private queue: Promise<void> = Promise.resolve();
  private countedPrincipal: string | undefined;
  /** Set while the send buffer is over its limit; the timer cuts off a reader that does not catch up. */
  private behind: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: WebSocket,
    private readonly dependencies: SocketDependencies,
  ) {
    this.idleTimer = setTimeout(this.onIdle, dependencies.limits.idleMs);
    socket.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      this.idleTimer.refresh();
      const frame = isBinary ? undefined : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      this.queue = this.queue.then(() => this.onFrame(frame)).catch((error: unknown) => dependencies.logger.warn({ err: error }, 'websocket frame failed'));
    });
    // A protocol-level ping (Python's websockets sends one every 20 s) is a sign of life too.
    socket.on('ping', () => this.idleTimer.refresh());
    socket.on('close', () => this.onClose());
    socket.on('error', (error) => dependencies.logger.debug({ err: error }, 'websocket error'));
  }

  get open(): boolean {
    return this.socket.readyState === this.socket.OPEN;
  }

  get ready(): boolean {
    return this.open && this.behind === undefined;
  }

  send(frame: string): boolean {
    if (!this.ready) return false;
    this.socket.send(frame, this.afterWrite);
    // Never unbounded memory for a reader that does not read: what comes next waits in the session.
    if (this.socket.bufferedAmount > this.dependencies.limits.maxBufferedBytes) {
      this.behind = setTimeout(this.onSlowReader, this.dependencies.limits.slowReaderMs);
    }
    return true;
  }

  /** After each frame is written out: a reader that was behind and has caught up gets what waited. */
  private readonly afterWrite = () => {
    if (this.behind === undefined || this.socket.bufferedAmount > this.dependencies.limits.maxBufferedBytes / 2) return;
    clearTimeout(this.behind);
    this.behind = undefined;
    if (this.state.kind === 'authenticated') this.dependencies.hub.deliverHeld(this.state.sessionId);
  };

  private readonly onSlowReader = () => {
    this.socket.close(closeCodes.slowReader, 'reader too slow: resume the session to receive the rest');
  };

  /** For answers no session holds: sent whenever the socket is open. */
  sendUntracked(frame: string): void {
    if (this.open) this.socket.send(frame);
  }

  supersede(): void {
    if (this.state.kind === 'authenticated') this.state = { kind: 'closed' };
    this.socket.close(closeCodes.superseded, 'the session was resumed on another connection');
  }

  private readonly onIdle = () => {
    this.socket.close(closeCodes.idle, `no message for ${Math.round(this.dependencies.limits.idleMs / 1000)} s`);
  };

  private onClose(): void {
    clearTimeout(this.idleTimer);
    clearTimeout(this.behind);
    const state = this.state;
    this.state = { kind: 'closed' };
    if (state.kind === 'authenticated') this.dependencies.hub.detach(state.sessionId);
    if (this.countedPrincipal !== undefined) {
      const counts = this.dependencies.socketsPerPrincipal;
      const left = (counts.get(this.countedPrincipal) ?? 1) - 1;
      if (left <= 0) counts.delete(this.countedPrincipal);
      else counts.set(this.countedPrincipal, left);
    }
  }

  /** Refusals of a frame go out even to a reader that is behind: they are small, and nothing holds them. */
  private sendRefusal(error: ApiError): void {
    if (this.open) this.socket.send(toWireJson({ errors: [error] }));
  }

  private async onFrame(frame: Buffer | undefined): Promise<void> {
    if (this.state.kind === 'closed') return;
    const { limits, service } = this.dependencies;
    if (!frame) {
      this.sendRefusal(createError('invalidRequestBody', 'Binary frames are not read: send each task array as a text frame of JSON.'));
      return;
    }
    if (frame.length > limits.maxFrameBytes) {
      this.sendRefusal(
        createError('payloadTooLarge', `The frame is larger than this gateway's limit of ${limits.maxFrameBytes} bytes. Send fewer tasks per frame.`, { max: limits.maxFrameBytes }),
      );
      return;
    }
    let tasks: unknown[];
    try {
      tasks = readTaskArray(parseJsonBody(frame.toString('utf8')), limits.maxTasksPerFrame);
    } catch (error) {
      if (error instanceof ClientRequestError) {
        this.sendRefusal(error.apiError);
        return;
      }
      throw error;
    }

    let resumed = false;
    if (this.state.kind === 'anonymous') {
      const authorization = service.authorize(tasks);
      if (authorization.kind === 'refused') {
        this.sendRefusal(authorization.error);
        this.socket.close(closeCodes.invalidKey, authorization.error.code);
        this.state = { kind: 'closed' };
        return;
      }
      if (authorization.kind === 'authorized') {
        const opened = await this.openSession(authorization.principal, authorization.resumeSession);
        if (opened === 'refused') return;
        resumed = opened === 'resumed';
      }
    }
    const state = this.state;
    const principal = state.kind === 'authenticated' ? state.principal : undefined;
    const sessionId = state.kind === 'authenticated' ? state.sessionId : undefined;
    const run = createCancellation();
    const sink = new FrameSink(this, this.dependencies.hub, principal?.id);
    // Not awaited: a long generation must not hold up the frames after it.
    const release = this.dependencies.drain.track(run);
    void service
      .run(tasks, { principal, cancellation: run, ...(sessionId !== undefined && { connectionSessionUUID: sessionId, admit: (incoming) => this.admit(incoming, sink, run) }) }, sink)
      .catch((error: unknown) => this.dependencies.logger.warn({ err: error }, 'websocket tasks failed'))
      .finally(release);
    // The authentication answer is out (the service answers it before anything else): now what waited.
    if (resumed && sessionId !== undefined) this.dependencies.hub.deliverHeld(sessionId);
  }

  private async openSession(principal: Principal, resumeSession: string | undefined): Promise<'opened' | 'resumed' | 'refused'> {
    const { hub, limits, socketsPerPrincipal } = this.dependencies;
    const held = socketsPerPrincipal.get(principal.id) ?? 0;
    if (held >= limits.maxSocketsPerKey) {
      this.sendRefusal(
        createError('tooManyConnections', `This API key already holds ${held} WebSocket connections to this gateway (the limit is ${limits.maxSocketsPerKey}); close one, or send more tasks per connection.`, {
          taskType: 'authentication',
          retryAfter: 1,
        }),
      );
      this.socket.close(closeCodes.tooManyConnections, 'tooManyConnections');
      this.state = { kind: 'closed' };
      return 'refused';
    }
    socketsPerPrincipal.set(principal.id, held + 1);
    this.countedPrincipal = principal.id;
    const resumed = resumeSession !== undefined && (await hub.resume(resumeSession, principal.id, this));
    const sessionId = resumed ? resumeSession : await hub.open(principal.id, this);
    // The socket may have closed while the session was being opened.
    if (this.state.kind === 'closed') {
      hub.detach(sessionId);
      return 'refused';
    }
    this.state = { kind: 'authenticated', principal, sessionId };
    this.dependencies.request.principal = principal;
    return resumed ? 'resumed' : 'opened';
  }

  /** Whether each task runs here: at most maxTasksInFlight at once, and a task sent before is not run twice. */
  private async admit(tasks: readonly IncomingTask[], sink: FrameSink, run: CancellationSource): Promise<Admission[]> {
    const state = this.state;
    if (state.kind !== 'authenticated') return tasks.map(() => 'skip');
    const { hub, limits, drain, frameRateLimit } = this.dependencies;
    // Once per frame that runs tasks (pings and authentication alone do not count).
    const overLimit = frameRateLimit && (await frameRateLimit(this.dependencies.request));
    if (overLimit) return tasks.map((task) => overLimit(task.details));
    return Promise.all(
      tasks.map(async (task): Promise<Admission> => {
        if (drain.draining) return refusedWhileDraining(task.details);
        const taskUUID = task.details.taskUUID;
        if (taskUUID === undefined || task.refusals.length > 0) return 'run';
        if (this.inFlight >= limits.maxTasksInFlight) {
          return createError('tooManyTasksInFlight', `This connection already has ${this.inFlight} tasks running (the limit is ${limits.maxTasksInFlight}); send more as they finish.`, {
            ...task.details,
            retryAfter: 1,
          });
        }
        this.inFlight++;
        const claim = await hub.claim(state.principal.id, taskUUID, state.sessionId, run);
        if (claim !== 'new') this.inFlight--;
        switch (claim) {
          case 'new':
            sink.track(task.index, taskUUID, () => this.inFlight--);
            return 'run';
          case 'owned':
          case 'moved':
            // Its answers are coming (or were held) for this session: it is not generated again.
            return 'skip';
          case 'busy':
            return createError('conflictTaskUUID', `Task "${taskUUID}" is already running on another open connection of this API key; its answers go there.`, {
              ...task.details,
              parameter: 'taskUUID',
            });
        }
      }),
    );
  }
}

interface TrackedTask {
  readonly taskUUID: string;
  readonly ended: () => void;
}

/**
 * The answers of one frame's tasks: each image or failed task becomes a frame of its own (warnings ride on
 * the task's first one). A task the session tracks is answered through the hub, which sends it now or holds
 * it for a resume; the rest (pongs, the authentication answer, refusals) go straight to this socket.
 */
class FrameSink implements TaskSink {
  // Answers outside a session's tasks (pongs, the authentication answer) are small and go out even to a reader that is behind.
  private readonly tracked = new Map<number, TrackedTask>();
  private pendingWarnings: Map<number, readonly ApiWarning[]> | undefined;

  constructor(
    private readonly socket: TaskSocket,
    private readonly hub: SessionHub,
    private readonly principal: string | undefined,
  ) {}

  track(index: number, taskUUID: string, ended: () => void): void {
    this.tracked.set(index, { taskUUID, ended });
  }

  result(index: number, result: TaskResult): void {
    this.answer(index, { data: [result] });
  }

  errors(index: number, errors: readonly ApiError[]): void {
    this.answer(index, { errors });
  }

  warnings(index: number, warnings: readonly ApiWarning[]): void {
    (this.pendingWarnings ??= new Map()).set(index, warnings);
  }

  end(index: number): void {
    const task = this.tracked.get(index);
    if (!task || this.principal === undefined) return;
    this.tracked.delete(index);
    task.ended();
    this.hub.finish(this.principal, task.taskUUID);
  }

  private answer(index: number, body: { data?: TaskResult[]; errors?: readonly ApiError[]; warnings?: readonly ApiWarning[] }): void {
    const warnings = this.pendingWarnings?.get(index);
    if (warnings) {
      this.pendingWarnings?.delete(index);
      body.warnings = warnings;
    }
    const frame = toWireJson(body);
    const task = this.tracked.get(index);
    if (task && this.principal !== undefined) this.hub.deliver(this.principal, task.taskUUID, frame);
    else this.socket.sendUntracked(frame);
  }
}
