import { isInteger, isSafeNumber, parse as parseLossless } from 'lossless-json';
import WebSocket from 'ws';

/** A frame the gateway sent, read losslessly (seeds beyond 2^53 come back as bigints). */
export interface ServerFrame {
  data?: Record<string, unknown>[];
  errors?: Record<string, unknown>[];
  warnings?: Record<string, unknown>[];
}

/**
 * A bare WebSocket client of the gateway's task protocol, for protocol and abuse tests: sends frames as
 * given (text, binary, anything), keeps every frame it receives, and waits for the ones a test expects.
 */
export interface TaskSocketClient {
  readonly socket: WebSocket;
  readonly frames: ServerFrame[];
  send(frame: unknown): void;
  /** Waits until `count` frames in all have arrived (or throws after timeoutMs). */
  waitForFrames(count: number, timeoutMs?: number): Promise<ServerFrame[]>;
  /** Waits for a frame matching `match` that has not been returned before. */
  next(match?: (frame: ServerFrame) => boolean, timeoutMs?: number): Promise<ServerFrame>;
  /** Resolves with the close code and reason once the socket closes. */
  readonly closed: Promise<{ code: number; reason: string }>;
  authenticate(apiKey: string, connectionSessionUUID?: string): Promise<string>;
  close(): void;
}

export async function openTaskSocket(url: string): Promise<TaskSocketClient> {
  const socket = new WebSocket(url);
  const frames: ServerFrame[] = [];
  const taken = new Set<ServerFrame>();
  const waiters = new Set<() => void>();
  socket.on('message', (data: Buffer) => {
    const text = data.toString();
    // Only a run of 16+ digits can be an integer beyond 2^53; the lossless parser is slow on megabytes of base64.
    const frame = /\d{16}/.test(text) ? parseLossless(text, undefined, (digits) => (isSafeNumber(digits) ? Number(digits) : isInteger(digits) ? BigInt(digits) : Number(digits))) : JSON.parse(text);
    frames.push(frame as ServerFrame);
    for (const waiter of waiters) waiter();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });

  function waitUntil<T>(find: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = find();
        if (found === undefined) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(found);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`${what} did not arrive within ${timeoutMs} ms; got ${frames.length} frames: ${JSON.stringify(frames.slice(-5), (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value)).slice(0, 2000)}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  }

  const client: TaskSocketClient = {
    socket,
    frames,
    send(frame) {
      socket.send(typeof frame === 'string' || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame));
    },
    waitForFrames(count, timeoutMs = 10_000) {
      return waitUntil(() => (frames.length >= count ? frames.slice(0, count) : undefined), timeoutMs, `${count} frames`);
    },
    next(match = () => true, timeoutMs = 10_000) {
      return waitUntil(
        () => {
          const frame = frames.find((candidate) => !taken.has(candidate) && match(candidate));
          if (frame) taken.add(frame);
          return frame;
        },
        timeoutMs,
        'the frame',
      );
    },
    closed,
    async authenticate(apiKey, connectionSessionUUID) {
      client.send([{ taskType: 'authentication', apiKey, ...(connectionSessionUUID && { connectionSessionUUID }) }]);
      const answer = await client.next((frame) => frame.data?.[0]?.['taskType'] === 'authentication' || frame.errors?.[0]?.['taskType'] === 'authentication');
      const session = answer.data?.[0]?.['connectionSessionUUID'];
      if (typeof session !== 'string') throw new Error(`authentication failed: ${JSON.stringify(answer)}`);
      return session;
    },
    close() {
      socket.close();
    },
  };
  return client;
}

/** The frames that carry answers for one task. */
export function framesOf(frames: readonly ServerFrame[], taskUUID: string): ServerFrame[] {
  return frames.filter((frame) => frame.data?.some((item) => item['taskUUID'] === taskUUID) || frame.errors?.some((error) => error['taskUUID'] === taskUUID));
}
