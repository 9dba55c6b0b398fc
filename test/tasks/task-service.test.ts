import { createMemoryTaskLedger } from '../../src/ledger/memory-task-ledger.js';
import { describe, expect, it } from 'vitest';
import { neverCancelled } from '../../src/contracts/cancellation.js';
import type { TaskResult } from '../../src/contracts/task-result.js';
import type { ApiError, ApiWarning } from '../../src/errors.js';
import { createApiKeys } from '../../src/tasks/api-keys.js';
import { createTaskService } from '../../src/tasks/task-service.js';
import type { IncomingTask, TaskContext, TaskSink, TaskType } from '../../src/tasks/task-type.js';
import { createTaskTypes } from '../../src/tasks/task-types.js';
import { createCatalogueResolver } from '../../src/models/catalogue.js';
import { createEchoDispatcher, imageTask, testRecords } from '../helper.js';

const KEY = 'service-test-key-0123456789';
const keys = createApiKeys([KEY]);
const principal = keys.verify(KEY);
const service = createTaskService(createTaskTypes({ keys, resolver: createCatalogueResolver(testRecords), dispatcher: createEchoDispatcher(), limits: { maxEmbeddingsPerTask: 10 }, ledger: createMemoryTaskLedger({ ttlSeconds: 60 }) }), keys);

/** Records what the service reports, in the order it reports it. */
class RecordingSink implements TaskSink {
  readonly events: [string, number, unknown][] = [];
  result(index: number, result: TaskResult): void {
    this.events.push(['result', index, result]);
  }
  errors(index: number, errors: readonly ApiError[]): void {
    this.events.push(['errors', index, errors.map((error) => error.code)]);
  }
  warnings(index: number, warnings: readonly ApiWarning[]): void {
    this.events.push(['warnings', index, warnings.map((warning) => warning.code)]);
  }
  end(index: number): void {
    this.events.push(['end', index, undefined]);
  }
  of(index: number) {
    return this.events.filter(([, at]) => at === index).map(([kind, , value]) => [kind, value]);
  }
}

async function run(tasks: unknown[], context: Partial<TaskContext> = {}): Promise<RecordingSink> {
  const sink = new RecordingSink();
  await service.run(tasks, { principal, cancellation: neverCancelled, ...context }, sink);
  return sink;
}

describe('the task service', () => {
  it('answers what no task type can: not an object, a missing or unknown taskType', async () => {
    const sink = await run([42, null, ['x'], { taskUUID: 'x' }, { taskType: 'videoInference' }]);
    for (const index of [0, 1, 2]) expect(sink.of(index)).toEqual([['errors', ['invalidTask']], ['end', undefined]]);
    for (const index of [3, 4]) expect(sink.of(index)).toEqual([['errors', ['unsupportedTaskType']], ['end', undefined]]);
  });

  it('names the task types it runs when one is unknown', async () => {
    const sink = new RecordingSink();
    const errors: ApiError[] = [];
    sink.errors = (_index, found) => {
      errors.push(...found);
    };
    await service.run([{ taskType: 'videoInference', taskUUID: 'x' }], { principal, cancellation: neverCancelled }, sink);
    expect(errors[0]).toMatchObject({ taskUUID: 'x', taskType: 'videoInference', taskIndex: 0, allowed: ['imageInference', 'authentication', 'ping', 'getResponse'] });
    expect(service.taskTypes).toEqual(['imageInference', 'authentication', 'ping', 'getResponse']);
  });

  it('refuses every task that shares a taskUUID and keeps the others', async () => {
    const shared = '7f8b1f4e-1111-4f7a-9a53-2f1c0e6c0c01';
    const sink = await run([imageTask({ taskUUID: shared }), imageTask(), imageTask({ taskUUID: shared.toUpperCase() })]);
    expect(sink.of(0)).toEqual([['errors', ['duplicateTaskUUID']], ['end', undefined]]);
    expect(sink.of(1).map(([kind]) => kind)).toEqual(['result', 'end']);
    expect(sink.of(2)).toEqual([['errors', ['duplicateTaskUUID']], ['end', undefined]]);
  });

  it('runs ping before authentication, and refuses work without a principal', async () => {
    const sink = await run([{ taskType: 'ping', ping: true }, imageTask()], { principal: undefined });
    expect(sink.of(0)).toEqual([['result', { taskType: 'ping', pong: true }], ['end', undefined]]);
    expect(sink.of(1)).toEqual([['errors', ['missingApiKey']], ['end', undefined]]);
  });

  it('answers tasks that need no principal before run() yields, ahead of the work', async () => {
    const sink = new RecordingSink();
    const running = service.run([imageTask(), { taskType: 'ping', ping: true }], { principal, cancellation: neverCancelled, admit: async (tasks) => tasks.map(() => 'run' as const) }, sink);
    expect(sink.events[0]).toEqual(['result', 1, { taskType: 'ping', pong: true }]);
    await running;
    expect(sink.of(0).map(([kind]) => kind)).toEqual(['result', 'end']);
  });

  it('asks the transport about each working task, and skips or refuses as it says', async () => {
    const asked: IncomingTask[] = [];
    const tasks = [imageTask(), imageTask(), imageTask(), { taskType: 'ping' }];
    const sink = await run(tasks, {
      admit: async (working) => {
        asked.push(...working);
        return ['run', 'skip', { code: 'conflictTaskUUID', message: 'taken', retryable: false }];
      },
    });
    expect(asked.map((task) => task.index)).toEqual([0, 1, 2]);
    expect(sink.of(0).map(([kind]) => kind)).toEqual(['result', 'end']);
    expect(sink.of(1)).toEqual([]);
    expect(sink.of(2)).toEqual([['errors', ['conflictTaskUUID']], ['end', undefined]]);
  });

  it('runs every task type of a request, each with its own tasks', async () => {
    const seen: string[] = [];
    const recording = (name: string): TaskType => ({
      taskType: name,
      needsPrincipal: true,
      async run(tasks, _context, sink) {
        for (const task of tasks) {
          seen.push(`${name}:${task.index}`);
          sink.end(task.index);
        }
      },
    });
    const custom = createTaskService([recording('a'), recording('b')], keys);
    await custom.run([{ taskType: 'b' }, { taskType: 'a' }, { taskType: 'b' }], { principal, cancellation: neverCancelled }, new RecordingSink());
    expect(seen.sort()).toEqual(['a:1', 'b:0', 'b:2']);
  });
});

describe('authorization', () => {
  it('takes the key of a leading authentication task, with a session to resume', () => {
    expect(service.authorize([{ taskType: 'authentication', apiKey: KEY }, imageTask()])).toEqual({ kind: 'authorized', principal, resumeSession: undefined });
    const session = '0f6f3b8e-2a7c-4d7e-8b0e-9d5f0c1a2b3c';
    expect(service.authorize([{ taskType: 'authentication', apiKey: KEY, connectionSessionUUID: session }])).toMatchObject({ resumeSession: session });
  });

  it('refuses a wrong or missing key and a malformed session, and waits for a key that is not there', () => {
    expect(service.authorize([{ taskType: 'authentication', apiKey: 'wrong-key-0000000000' }])).toMatchObject({ kind: 'refused', error: { code: 'invalidApiKey', taskType: 'authentication' } });
    expect(service.authorize([{ taskType: 'authentication' }])).toMatchObject({ kind: 'refused', error: { code: 'missingApiKey', parameter: 'apiKey' } });
    expect(service.authorize([{ taskType: 'authentication', apiKey: KEY, connectionSessionUUID: 'x' }])).toMatchObject({ kind: 'refused', error: { code: 'invalidParameter', parameter: 'connectionSessionUUID' } });
    expect(service.authorize([imageTask(), { taskType: 'authentication', apiKey: KEY }])).toEqual({ kind: 'unauthenticated' });
  });

  it('is open without keys: anyone, by the digest of the key they present', () => {
    const open = createApiKeys([]);
    const openService = createTaskService([], open);
    expect(openService.authorize([imageTask()])).toEqual({ kind: 'authorized', principal: { id: 'open' }, resumeSession: undefined });
    const presented = openService.authorize([{ taskType: 'authentication', apiKey: 'anything' }]);
    expect(presented).toMatchObject({ kind: 'authorized', principal: { id: expect.stringMatching(/^[0-9a-f]{64}$/) } });
  });
});
