import type { Dispatcher } from '../../contracts/dispatcher.js';
import type { ModelResolver } from '../../contracts/model-resolver.js';
import type { TaskType } from '../task-type.js';
import type { RuleLimits } from './model-rules.js';
import { validateImageInferenceTasks } from './validate.js';

export interface ImageInferenceDependencies {
  readonly resolver: ModelResolver;
  readonly dispatcher: Dispatcher;
  readonly limits: RuleLimits;
}

/**
 * `imageInference`: every task of the request validated together (one resolution round trip), each valid
 * one dispatched to a GPU worker, each image reported as it comes back.
 */
export function createImageInferenceTaskType(dependencies: ImageInferenceDependencies): TaskType {
  return {
    taskType: 'imageInference',
    needsPrincipal: true,
    async run(tasks, context, sink) {
      const verdicts = await validateImageInferenceTasks(tasks, dependencies);
      const running: Promise<void>[] = [];
      for (const verdict of verdicts) {
        if (verdict.warnings.length > 0) sink.warnings(verdict.index, verdict.warnings);
        if (!verdict.valid) {
          sink.errors(verdict.index, verdict.errors);
          sink.end(verdict.index);
          continue;
        }
        const index = verdict.index;
        running.push(
          dependencies.dispatcher.dispatch(verdict.valid, { details: verdict.details, cancellation: context.cancellation }).then((outcome) => {
            if (outcome.kind === 'failed') sink.errors(index, [outcome.error]);
            else for (const image of outcome.images) sink.result(index, image);
            sink.end(index);
          }),
        );
      }
      if (running.length === 1) await running[0];
      else if (running.length > 1) await Promise.all(running);
    },
  };
}
