import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { isInteger, isSafeNumber, parse as parseLossless } from 'lossless-json';
import { afterEach, expect } from 'vitest';
import { buildApp, type AppDependencies } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import type { Dispatcher } from '../src/contracts/dispatcher.js';
import { createNoWorkerDispatcher } from '../src/dispatch/no-worker-dispatcher.js';
import { createCatalogueResolver } from '../src/models/catalogue.js';
import type { ModelRecord } from '../src/contracts/model-record.js';
import { seedToJson } from '../src/contracts/seed.js';
import type { IncomingTask } from '../src/tasks/task-type.js';

export const TEST_API_KEY = 'test-key-0123456789abcdef';

/** Operator records the tests use beside the built-in catalogue. */
export const testRecords: readonly ModelRecord[] = [
  { air: 'civitai:1000@1', name: 'Test SD15 Embedding', type: 'textualInversion', family: 'sd1', source: 'operator' },
  { air: 'civitai:1001@1', name: 'Test SDXL Embedding', type: 'textualInversion', family: 'sdxl', source: 'operator' },
  { air: 'civitai:1002@1', name: 'Test SDXL LoRA', type: 'lora', family: 'sdxl', source: 'operator' },
  { air: 'civitai:1003@1', name: 'Test SDXL Checkpoint', type: 'checkpoint', family: 'sdxl', source: 'operator' },
  { air: 'civitai:1004@1', name: 'Test SD2 Checkpoint', type: 'checkpoint', family: 'sd2', source: 'operator' },
  { air: 'civitai:1005@1', name: 'Test SD2 Embedding', type: 'textualInversion', family: 'sd2', source: 'operator' },
];

export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({ API_KEYS: TEST_API_KEY }), logLevel: 'silent', ...overrides };
}

/**
 * A dispatcher that stands in for the GPU fleet at the API boundary: one image per requested result,
 * carrying the task's seed back, so partial success and exact seeds can be seen in responses.
 */
export function createEchoDispatcher(): Dispatcher {
  return {
    async dispatch({ task }) {
      const seed = task.seed ?? 42n;
      return {
        kind: 'images',
        images: Array.from({ length: task.numberResults }, (_, index) => ({
          taskType: 'imageInference' as const,
          taskUUID: task.taskUUID,
          imageUUID: randomUUID(),
          imageURL: `http://127.0.0.1/v1/images/${task.taskUUID}-${index}.png`,
          seed: seedToJson(seed + BigInt(index), task.seedAsText),
        })),
      };
    },
  };
}

const openApps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(openApps.splice(0).map((app) => app.close()));
});

/** Builds the app for one test and closes it after. */
export async function buildTestApp(overrides: Partial<AppDependencies> = {}): Promise<FastifyInstance> {
  const app = await buildApp({
    config: testConfig(),
    resolver: createCatalogueResolver(testRecords),
    dispatcher: createNoWorkerDispatcher(),
    ...overrides,
  });
  openApps.push(app);
  return app;
}

/** Tasks as the task service hands them to a task type: their ids read, nothing refused. */
export function incomingTasks(tasks: readonly Record<string, unknown>[]): IncomingTask[] {
  return tasks.map((raw, index) => ({
    index,
    raw,
    details: {
      ...(typeof raw['taskUUID'] === 'string' && { taskUUID: raw['taskUUID'] }),
      ...(typeof raw['taskType'] === 'string' && { taskType: raw['taskType'] }),
      taskIndex: index,
    },
    refusals: [],
  }));
}

export function imageTask(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    taskType: 'imageInference',
    taskUUID: randomUUID(),
    positivePrompt: 'a lighthouse at dusk, oil painting',
    model: 'civitai:4384@128713',
    width: 512,
    height: 512,
    ...overrides,
  };
}

export const authorized = { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' };

export interface ErrorBody {
  code: string;
  message: string;
  parameter?: string;
  taskUUID?: string;
  taskType?: string;
  taskIndex?: number;
  min?: number;
  max?: number;
  allowed?: (string | number)[];
  retryable: boolean;
}

export interface TaskResponseBody {
  data: { taskUUID: string; seed: number | bigint | string; imageUUID: string; NSFWContent?: boolean; [field: string]: unknown }[];
  errors: ErrorBody[];
  warnings: { code: string; message: string; parameter?: string; taskUUID?: string }[];
  error?: { code: string; message: string; parameter?: string };
}

/**
 * A REST answer read as tests want it: members the gateway left out (it sends only those with something in
 * them, as Runware does) read as empty lists. That no member is ever sent empty is asserted on every answer.
 */
export function readTaskResponse(text: string): TaskResponseBody {
  // Read losslessly: JSON.parse would round the 64-bit seeds the tests check (they come back as bigints).
  const wire = parseLossless(text, undefined, (digits) => (isSafeNumber(digits) ? Number(digits) : isInteger(digits) ? BigInt(digits) : Number(digits))) as Partial<TaskResponseBody>;
  for (const member of ['data', 'errors', 'warnings'] as const) {
    if (wire[member] !== undefined) expect(wire[member], `"${member}" sent empty`).not.toHaveLength(0);
  }
  return { ...wire, data: wire.data ?? [], errors: wire.errors ?? [], warnings: wire.warnings ?? [] };
}

export async function postTasks(
  app: FastifyInstance,
  payload: unknown,
  headers: Record<string, string> = authorized,
): Promise<{ status: number; body: TaskResponseBody; headers: Record<string, unknown> }> {
  const response = await app.inject({
    method: 'POST',
    url: '/v1/tasks',
    headers,
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });
  return { status: response.statusCode, body: readTaskResponse(response.body), headers: response.headers };
}
