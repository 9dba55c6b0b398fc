import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { stringify } from 'lossless-json';
import { z } from 'zod';
import { isFinal, LedgerUnavailableError, type LedgerEntry, type TaskLedger } from '../../contracts/task-ledger.js';
import type { ApiKeys } from '../../tasks/api-keys.js';
import { ledgerUnavailable, taskNotFound } from '../../tasks/task-record-errors.js';
import type { TaskService } from '../../tasks/task-service.js';
import { installBearerAuth } from '../auth.js';
import { ClientRequestError } from '../client-request-error.js';
import type { Drain } from '../drain.js';
import { principalFor } from '../route-principal.js';
import { taskResponseSchema } from '../response-schema.js';

export interface TaskEventRouteOptions {
  readonly ledger: TaskLedger;
  readonly keys: ApiKeys;
  readonly service: TaskService;
  readonly drain: Drain;
  /** How often a watched task's record and events are read. */
  readonly pollMs?: number;
  /** A stream ends after this long; EventSource reconnects with Last-Event-ID and loses nothing. */
  readonly maxStreamMs?: number;
}

const KEEPALIVE_MS = 15_000;

/**
 * GET /v1/tasks/{taskUUID}/events: a task's progress as Server-Sent Events — `queued` (with its place),
 * `started`, `progress` (denoising steps, from the worker), then one `result` per image, `errors` if it
 * failed, and `done`. Each stored event has an id; a client that reconnects with Last-Event-ID gets what
 * came after it (the results again if it had not seen `done`). Read from the task ledger, so any replica
 * serves any task's stream.
 */
export async function taskEventRoutes(app: FastifyInstance, options: TaskEventRouteOptions): Promise<void> {
  installBearerAuth(app, options.keys, { keyInBody: false });
  const pollMs = options.pollMs ?? 250;
  const maxStreamMs = options.maxStreamMs ?? 30 * 60_000;
  app.get(
    '/v1/tasks/:taskUUID/events',
    {
      schema: {
        tags: ['tasks'],
        summary: "A task's progress, as Server-Sent Events",
        description:
          'Events `queued` ({position}), `started`, `progress` ({step, steps}), `result` (one per image, as getResponse gives it), `errors`, then `done` ({state}); resumable with the `Last-Event-ID` header (the id of the last event seen). Async tasks report every stage; a sync task reports its results and `done` when it finishes.',
        security: [{ bearerAuth: [] }],
        params: z.object({ taskUUID: z.uuid().meta({ description: 'The taskUUID the task was sent with.' }) }),
        response: {
          200: {
            description: 'An event stream (text/event-stream); each event\'s data is JSON.',
            content: {
              'text/event-stream': {
                schema: z
                  .object({ id: z.string().optional(), event: z.string().optional(), data: z.string().optional(), retry: z.int().optional() })
                  .meta({ id: 'TaskEventStreamEvent', description: 'One Server-Sent Event, as the stream\'s fields.' }),
              },
            },
          },
          ...Object.fromEntries([400, 401, 404, 429, 503].map((status) => [status, taskResponseSchema])),
        },
      },
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const { taskUUID } = request.params as { taskUUID: string };
      const principal = principalFor(request, options.service);
      const entry = await readEntry(options.ledger, principal.id, taskUUID);
      if (!entry) {
        throw new ClientRequestError(taskNotFound(taskUUID, options.ledger.ttlSeconds));
      }
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        // nginx would otherwise buffer the stream.
        'x-accel-buffering': 'no',
        'x-request-id': request.id,
      });
      raw.write('retry: 2000\n\n');
      let open = true;
      raw.on('close', () => (open = false));
      const lastEventId = request.headers['last-event-id'];
      await stream(options, { principal: principal.id, taskUUID, afterId: typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : undefined, pollMs, maxStreamMs, drain: options.drain }, (text) => {
        if (open) raw.write(text);
        return open;
      });
      raw.end();
    },
  );
}

interface StreamState {
  readonly principal: string;
  readonly taskUUID: string;
  afterId: string | undefined;
  readonly pollMs: number;
  readonly maxStreamMs: number;
  readonly drain: Drain;
}

async function stream(options: TaskEventRouteOptions, state: StreamState, write: (text: string) => boolean): Promise<void> {
  const { ledger } = options;
  const endAt = Date.now() + state.maxStreamMs;
  let lastWrite = Date.now();
  let saidProcessing = false;
  while (Date.now() < endAt && !state.drain.draining) {
    let entry: LedgerEntry | undefined;
    try {
      for (const stored of await ledger.events(state.principal, state.taskUUID, state.afterId)) {
        if (stored.event.type === 'finished') {
          entry = await ledger.get(state.principal, state.taskUUID);
          if (entry) return finish(entry, stored.id, write);
        }
        if (!write(frame(stored.event.type, stored.event, stored.id))) return;
        state.afterId = stored.id;
        lastWrite = Date.now();
      }
      entry = await ledger.get(state.principal, state.taskUUID);
    } catch (error) {
      if (!(error instanceof LedgerUnavailableError)) throw error;
      // The store is down for a moment: the client keeps the stream and hears nothing new meanwhile.
    }
    // Sync tasks (and async ones whose events were lost) end when their record does.
    if (entry && isFinal(entry)) return finish(entry, 'final', write);
    if (entry && !saidProcessing && state.afterId === undefined) {
      saidProcessing = true;
      if (!write(frame('processing', { taskUUID: state.taskUUID }))) return;
    }
    if (Date.now() - lastWrite >= KEEPALIVE_MS) {
      if (!write(': keepalive\n\n')) return;
      lastWrite = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, state.pollMs));
    if (!write('')) return;
  }
}

function finish(entry: LedgerEntry, id: string, write: (text: string) => boolean): void {
  for (const result of entry.results) if (!write(frame('result', { ...result, status: 'success' }))) return;
  if (entry.errors.length > 0 && !write(frame('errors', { errors: entry.errors }))) return;
  write(frame('done', { taskUUID: entry.taskUUID, state: entry.state }, id));
}

function frame(event: string, data: unknown, id?: string): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${stringify(data)}\n\n`;
}

async function readEntry(ledger: TaskLedger, principal: string, taskUUID: string): Promise<LedgerEntry | undefined> {
  try {
    return await ledger.get(principal, taskUUID);
  } catch (error) {
    if (!(error instanceof LedgerUnavailableError)) throw error;
    throw new ClientRequestError(ledgerUnavailable());
  }
}
