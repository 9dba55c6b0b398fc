import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import {
  jobEventSchema,
  jobRequestSchema,
  WORKER_PROTOCOL_VERSION,
  workerErrorBodySchema,
  workerHealthSchema,
} from '../src/dispatch/worker-protocol.js';

export const workerOpenApiPath = fileURLToPath(new URL('../openapi/worker.v1.json', import.meta.url));

/** Worker protocol v1 as an OpenAPI 3.1 document, generated from the zod schemas the gateway uses. */
export function workerOpenApiDocument(): string {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries({
    WorkerHealth: workerHealthSchema,
    JobRequest: jobRequestSchema,
    JobEvent: jobEventSchema,
    WorkerErrorBody: workerErrorBodySchema,
  })) {
    registry.add(schema, { id });
  }
  const { schemas } = z.toJSONSchema(registry, { target: 'draft-2020-12', uri: (id) => `#/components/schemas/${id}` });
  const components = Object.fromEntries(
    Object.entries(schemas).map(([id, schema]) => {
      const { $schema: _dialect, $id: _id, ...rest } = schema as Record<string, unknown>;
      return [id, rest];
    }),
  );
  const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
  const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: ref('WorkerErrorBody') } } });

  const document = {
    openapi: '3.1.0',
    info: {
      title: 'clipgate worker protocol',
      version: '1.0.0',
      description: [
        `The protocol between the clipgate gateway and its GPU workers (\`${WORKER_PROTOCOL_VERSION}\`).`,
        'A worker runs jobs: one imageInference task with its embeddings resolved to canonical safetensors files,',
        'which the worker downloads by URL, verifies by SHA-256, and injects into CLIP before generating.',
        'POST /v1/jobs answers 200 with a stream of NDJSON JobEvent lines: `accepted` at once, optional `progress`,',
        'then exactly one `result` or `error`. Refusals before acceptance are plain HTTP errors with a WorkerErrorBody.',
      ].join(' '),
    },
    paths: {
      '/v1/health': {
        get: {
          summary: 'Status, served families and models, capacity and load',
          responses: { 200: { description: 'Health', content: { 'application/json': { schema: ref('WorkerHealth') } } } },
        },
      },
      '/v1/jobs': {
        post: {
          summary: 'Run a job',
          parameters: [
            {
              name: 'traceparent',
              in: 'header',
              required: false,
              description: [
                'W3C trace context (https://www.w3.org/TR/trace-context/) of the gateway span that sent this attempt, present only when the gateway traces (OpenTelemetry).',
                "A worker may log its trace id with the job's lines, or continue the trace; it must ignore a header it cannot read, and never refuse a job for it.",
              ].join(' '),
              schema: { type: 'string', pattern: '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$', examples: ['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'] },
            },
            {
              name: 'tracestate',
              in: 'header',
              required: false,
              description: 'W3C trace context: vendor-specific trace state that goes with traceparent, when the trace has any.',
              schema: { type: 'string' },
            },
          ],
          requestBody: { required: true, content: { 'application/json': { schema: ref('JobRequest') } } },
          responses: {
            200: { description: 'NDJSON stream of JobEvent lines', content: { 'application/x-ndjson': { schema: ref('JobEvent') } } },
            400: errorResponse('The job is malformed (not retryable).'),
            409: errorResponse('A job with this jobId is already running here.'),
            422: errorResponse('The job cannot run here: unknown model, embedding of another family or shape (not retryable).'),
            429: errorResponse('The worker is at maxConcurrency (`busy`, retryable elsewhere).'),
            503: errorResponse('The worker is starting or draining (retryable elsewhere).'),
          },
        },
      },
      '/v1/jobs/{jobId}': {
        delete: {
          summary: 'Cancel a job; its stream ends with an `error` event whose code is `cancelled`',
          parameters: [{ name: 'jobId', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { 204: { description: 'Cancelled' }, 404: errorResponse('No such job is running or queued.') },
        },
      },
    },
    components: { schemas: components },
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}
