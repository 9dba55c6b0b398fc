import type { MetricsRecorder } from '../contracts/metrics-recorder.js';
import type { TaskSink } from './task-type.js';

/**
 * A sink that reports each task's latency and outcome when it ends: from the moment the request's tasks
 * were taken to the task's last answer, labelled by its task type (one of `known`, else `unknown`: a label
 * must not take whatever a client writes) and `success` or its first error's code.
 */
export function observedSink(sink: TaskSink, tasks: readonly unknown[], known: ReadonlySet<string>, recorder: MetricsRecorder): TaskSink {
  const started = performance.now();
  // By task index: the first error's code of each task that has one.
  const outcomes: (string | undefined)[] = [];
  return {
    result: (index, result) => sink.result(index, result),
    warnings: (index, warnings) => sink.warnings(index, warnings),
    errors(index, errors) {
      outcomes[index] ??= errors[0]?.code ?? 'error';
      sink.errors(index, errors);
    },
    end(index) {
      recorder.taskFinished(taskTypeLabel(tasks[index], known), outcomes[index] ?? 'success', (performance.now() - started) / 1000);
      sink.end(index);
    },
  };
}

function taskTypeLabel(task: unknown, known: ReadonlySet<string>): string {
  if (task === null || typeof task !== 'object') return 'unknown';
  const taskType = (task as Record<string, unknown>)['taskType'];
  return typeof taskType === 'string' && known.has(taskType) ? taskType : 'unknown';
}
