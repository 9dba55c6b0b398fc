import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { createError } from '../errors.js';
import { writeRawError } from './client-errors.js';

/**
 * At most `maxPerAddress` open connections from one address: slow or idle sockets from one client cannot use
 * up the process's descriptors and lock everyone else out. Behind a load balancer every connection comes from
 * its address, so the limit must be above the balancer's own pool (HTTP_MAX_CONNECTIONS_PER_IP).
 */
export function limitConnectionsPerAddress(server: Server, maxPerAddress: number): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const count = (open.get(address) ?? 0) + 1;
    if (count > maxPerAddress) {
      writeRawError(
        socket,
        createError('tooManyConnections', `This address already holds ${maxPerAddress} connections to this gateway (HTTP_MAX_CONNECTIONS_PER_IP); reuse them (keep-alive) or close some.`, {
          retryAfter: 1,
        }),
      );
      socket.destroy();
      return;
    }
    open.set(address, count);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
}
