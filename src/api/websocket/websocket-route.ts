import fastifyWebsocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import { createError } from '../../errors.js';
import type { SessionHub } from '../../sessions/session-hub.js';
import type { Drain } from '../drain.js';
import type { TaskService } from '../../tasks/task-service.js';
import type { FrameRateLimit } from '../rate-limits.js';
import { sendError } from '../send-error.js';
import { TaskSocket, type SocketLimits } from './task-socket.js';

export interface WebSocketRouteOptions {
  readonly service: TaskService;
  readonly hub: SessionHub;
  readonly drain: Drain;
  readonly limits: SocketLimits;
  readonly frameRateLimit?: FrameRateLimit;
}

/**
 * GET /v1 with an upgrade: Runware's WebSocket API, where its SDKs connect (`?sdk=js&version=…` and other
 * query strings are ignored; the key comes in the first frame). Built on @fastify/websocket (ws).
 */
export async function webSocketRoutes(app: FastifyInstance, options: WebSocketRouteOptions): Promise<void> {
  await app.register(fastifyWebsocket, {
    options: {
      // The hard cap: ws closes with 1009 above it. Frames between the soft and the hard limit get an error frame.
      maxPayload: options.limits.maxFrameBytes * 2,
      // Deflate would cost CPU on every frame of base64 images; clients that offer it work without.
      perMessageDeflate: false,
    },
  });
  const socketsPerPrincipal = new Map<string, number>();
  app.route({
    method: 'GET',
    url: '/v1',
    schema: { hide: true },
    // A plain GET: say what this endpoint is, in the documented error shape.
    handler: (_request, reply) =>
      sendError(reply, createError('routeNotFound', 'GET /v1 is the WebSocket endpoint: connect with an upgrade, or POST task arrays to /v1/tasks.')),
    wsHandler: (socket, request) => {
      // The TaskSocket lives as long as its socket: the socket's listeners hold it, nothing else needs to.
      // eslint-disable-next-line no-new
      new TaskSocket(socket, {
        service: options.service,
        hub: options.hub,
        drain: options.drain,
        limits: options.limits,
        socketsPerPrincipal,
        logger: app.log,
        request,
        ...(options.frameRateLimit && { frameRateLimit: options.frameRateLimit }),
      });
    },
  });
}
