import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import { createCancellation, type CancellationSource } from '../../contracts/cancellation.js';
import type { Principal } from '../../contracts/principal.js';
import type { TaskResult } from '../../contracts/task-result.js';
import { createError, type ApiError, type ApiWarning } from '../../errors.js';
import type { SessionHub, SessionSocket } from '../../sessions/session-hub.js';
import type { TaskService } from '../../tasks/task-service.js';
import type { Admission, IncomingTask, TaskSink } from '../../tasks/task-type.js';
import { ClientRequestError } from '../client-request-error.js';
import { parseJsonBody } from '../json-body.js';
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
  /** A reader this far behind is cut off: its answers wait in the session for a resume instead. */
  readonly maxBufferedBytes: number;
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
  readonly limits: SocketLimits;
  /** Sockets each principal holds on this replica. */
  readonly socketsPerPrincipal: Map<string, number>;
  readonly logger: Pick<FastifyBaseLogger, 'debug' | 'warn'>;
}

type State = { readonly kind: 'anonymous' } | { readonly kind: 'authenticated'; readonly principal: Principal; readonly sessionId: string } | { readonly kind: 'closed' };

export class TaskSocket implements SessionSocket {
  private state: State = { kind: 'anonymous' };
  private inFlight = 0;
  private idleTimer: NodeJS.Timeout;
  /** Frames are taken in order until each has passed authentication and admission; running does not wait. */
  private queue: Promise<void> = Promise.resolve();
  private countedPrincipal: string | undefined;

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
    socket.on('close', () => this.onClose());
    socket.on('error', (error) => dependencies.logger.debug({ err: error }, 'websocket error'));
  }

  send(frame: string): boolean {
    console.log('send', this.socket.readyState, frame.slice(0, 40));
    if (this.socket.readyState !== this.socket.OPEN) return false;
    if (this.socket.bufferedAmount + frame.length > this.dependencies.limits.maxBufferedBytes) {
      // Never unbounded memory for a reader that does not read: it can resume and take its answers.
      this.socket.close(closeCodes.slowReader, 'reader too slow: resume the session to receive the rest');
      return false;
    }
    this.socket.send(frame);
    return true;
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

  private sendRefusal(error: ApiError): void {
    this.send(toWireJson({ errors: [error] }));
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

    console.log('frame', this.state.kind, frame.toString().slice(0,50));
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
        if (!opened) return;
      }
    }
    const state = this.state;
    const principal = state.kind === 'authenticated' ? state.principal : undefined;
    const sessionId = state.kind === 'authenticated' ? state.sessionId : undefined;
    const run = createCancellation();
    const sink = new FrameSink(this, this.dependencies.hub, principal?.id);
    // Not awaited: a long generation must not hold up the frames after it.
    void service
      .run(tasks, { principal, cancellation: run, ...(sessionId !== undefined && { connectionSessionUUID: sessionId, admit: (incoming) => this.admit(incoming, sink, run) }) }, sink)
      .catch((error: unknown) => this.dependencies.logger.warn({ err: error }, 'websocket tasks failed'));
  }

  private async openSession(principal: Principal, resumeSession: string | undefined): Promise<boolean> {
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
      return false;
    }
    socketsPerPrincipal.set(principal.id, held + 1);
    this.countedPrincipal = principal.id;
    const resumed = resumeSession !== undefined && (await hub.resume(resumeSession, principal.id, this));
    const sessionId = resumed ? resumeSession : await hub.open(principal.id, this);
    // The socket may have closed while the session was being opened.
    if (this.state.kind === 'closed') {
      hub.detach(sessionId);
      return false;
    }
    this.state = { kind: 'authenticated', principal, sessionId };
    return true;
  }

  /** Whether each task runs here: at most maxTasksInFlight at once, and a task sent before is not run twice. */
  private async admit(tasks: readonly IncomingTask[], sink: FrameSink, run: CancellationSource): Promise<Admission[]> {
    const state = this.state;
    if (state.kind !== 'authenticated') return tasks.map(() => 'skip');
    const { hub, limits } = this.dependencies;
    return Promise.all(
      tasks.map(async (task): Promise<Admission> => {
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
    else this.socket.send(frame);
  }
}
