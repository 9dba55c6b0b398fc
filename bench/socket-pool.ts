import WebSocket from 'ws';

/**
 * Authenticated WebSockets to clipgate, each carrying one frame of tasks at a time; a frame is done when every
 * one of its tasks has answered with a data frame (one per image) that holds `expected`, the output field.
 */
export class SocketPool {
  private readonly idle: WebSocket[] = [];
  private readonly waiting = new Map<string, { expected: string; done: () => void; fail: (error: Error) => void }>();

  private constructor(
    private readonly apiKey: string,
    private readonly timeoutMs: number,
  ) {}

  static async open(url: string, count: number, apiKey: string, timeoutMs: number): Promise<SocketPool> {
    const pool = new SocketPool(apiKey, timeoutMs);
    await Promise.all(Array.from({ length: count }, () => pool.connect(url)));
    return pool;
  }

  private async connect(url: string): Promise<void> {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const authenticated = new Promise<void>((resolve, reject) => {
      socket.once('message', (data: Buffer) => (data.toString().includes('connectionSessionUUID') ? resolve() : reject(new Error(`authentication failed: ${data.toString()}`))));
    });
    socket.send(JSON.stringify([{ taskType: 'authentication', apiKey: this.apiKey }]));
    await authenticated;
    socket.on('message', (data: Buffer) => this.onFrame(data.toString()));
    this.idle.push(socket);
  }

  private onFrame(text: string): void {
    // Only the taskUUID is read: the generator must not pay for parsing the image it would throw away.
    const taskUUID = /"taskUUID":"([^"]+)"/.exec(text)?.[1];
    const waiter = taskUUID === undefined ? undefined : this.waiting.get(taskUUID);
    if (!waiter || taskUUID === undefined) return;
    this.waiting.delete(taskUUID);
    if (text.startsWith('{"data"') && text.includes(waiter.expected)) waiter.done();
    else waiter.fail(new Error(`clipgate WebSocket answered: ${text.slice(0, 300)}`));
  }

  /** Sends the tasks as one frame; resolves once each has answered (one image each). */
  async send(tasks: readonly Record<string, unknown>[], expected: string): Promise<void> {
    const socket = this.idle.pop();
    if (!socket) throw new Error('more frames in flight than sockets');
    const taskUUIDs = tasks.map((task) => task['taskUUID'] as string);
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        let left = tasks.length;
        timer = setTimeout(() => {
          for (const taskUUID of taskUUIDs) this.waiting.delete(taskUUID);
          reject(new Error(`no answer for ${left} of ${tasks.length} tasks within ${this.timeoutMs} ms`));
        }, this.timeoutMs);
        for (const taskUUID of taskUUIDs) {
          this.waiting.set(taskUUID, {
            expected,
            done: () => {
              if (--left === 0) resolve();
            },
            fail: reject,
          });
        }
        socket.send(JSON.stringify(tasks));
      });
    } finally {
      clearTimeout(timer);
      this.idle.push(socket);
    }
  }

  close(): void {
    for (const socket of this.idle) socket.close();
  }
}
