import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP forwarder on loopback standing in for a load balancer: each new connection goes to the current
 * target port; `dropAll` cuts every open connection at once (as a network fault or a dying replica would),
 * and `setTarget` sends the next connections elsewhere.
 */
export interface TcpSwitch {
  readonly port: number;
  setTarget(port: number): void;
  dropAll(): void;
  /** Connections opened through it so far. */
  readonly connections: number;
  close(): Promise<void>;
}

export async function startTcpSwitch(target: number): Promise<TcpSwitch> {
  let current = target;
  let connections = 0;
  const open = new Set<Socket>();
  const server = createServer((client) => {
    connections += 1;
    const upstream = connect(current, '127.0.0.1');
    open.add(client);
    open.add(upstream);
    const forget = () => {
      open.delete(client);
      open.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', forget).on('close', forget);
    upstream.on('error', forget).on('close', forget);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    setTarget: (port) => {
      current = port;
    },
    dropAll() {
      for (const socket of open) socket.destroy();
      open.clear();
    },
    get connections() {
      return connections;
    },
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
