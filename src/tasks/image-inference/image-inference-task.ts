import type { Dispatcher } from '../../contracts/dispatcher.js';
import type { ImageInferenceTask } from '../../contracts/image-inference-task.js';
import { createError, type ApiError, type ErrorDetails } from '../../errors.js';
import type { ModelResolver } from '../../contracts/model-resolver.js';
import type { TaskLedger } from '../../contracts/task-ledger.js';
import type { ImageResult } from '../../contracts/task-result.js';
import type { TaskType } from '../task-type.js';
import type { RuleLimits } from './model-rules.js';
import { validateImageInferenceTasks } from './validate.js';

export interface ImageInferenceDependencies {
  readonly resolver: ModelResolver;
  readonly dispatcher: Dispatcher;
  readonly limits: RuleLimits;
  /** Cold AIRs one request may send to the registry (REGISTRY_LOOKUPS_PER_REQUEST). */
  readonly lookupsPerRequest?: number;
  /** Where each task's fate is kept for getResponse; absent: nowhere. */
  readonly ledger?: TaskLedger;
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
      const lookups = { ...(context.principal && { principal: context.principal.id }), ...(dependencies.lookupsPerRequest !== undefined && { sourceLookups: dependencies.lookupsPerRequest }) };
      const verdicts = await validateImageInferenceTasks(tasks, dependencies, { lookups });
      const ledger = context.principal && dependencies.ledger;
      const principal = context.principal?.id ?? '';
      const running: Promise<void>[] = [];
      // A refused task is recorded too (getResponse gives its errors), before it ends.
      const refuse = (index: number, taskUUID: string | undefined, errors: readonly ApiError[]) => {
        sink.errors(index, errors);
        if (ledger && taskUUID && UUID.test(taskUUID)) running.push(ledger.finished(principal, { taskUUID, taskType: 'imageInference', state: 'error', results: [], errors }).then(() => sink.end(index)));
        else sink.end(index);
      };
      let inlineLeft = context.inlineMegapixels;
      for (const verdict of verdicts) {
        if (verdict.warnings.length > 0) sink.warnings(verdict.index, verdict.warnings);
        if (!verdict.valid) {
          refuse(verdict.index, verdict.details.taskUUID, verdict.errors);
          continue;
        }
        // One answer carries every inline image of its request: refused before any GPU time, not after.
        if (inlineLeft !== undefined && verdict.valid.task.outputType !== 'URL') {
          const megapixels = inlineMegapixelsOf(verdict.valid.task);
          if (megapixels > inlineLeft) {
            refuse(verdict.index, verdict.valid.task.taskUUID, [inlineOutputTooLarge(megapixels, context.inlineMegapixels ?? 0, verdict.details)]);
            continue;
          }
          inlineLeft -= megapixels;
        }
        const index = verdict.index;
        const taskUUID = verdict.valid.task.taskUUID;
        if (ledger) ledger.started(principal, taskUUID, 'imageInference');
        running.push(
          dependencies.dispatcher.dispatch(verdict.valid, { details: verdict.details, cancellation: context.cancellation }).then(async (outcome) => {
            if (outcome.kind === 'failed') sink.errors(index, [outcome.error]);
            else for (const image of outcome.images) sink.result(index, image);
            // Recorded before the task ends, so a client that has its answer finds the task finished
            // everywhere; a ledger that fails logs and lets the answer go.
            if (ledger) {
              const results: readonly ImageResult[] = outcome.kind === 'failed' ? [] : outcome.images.map(withoutInlineData);
              await ledger.finished(principal, { taskUUID, taskType: 'imageInference', state: outcome.kind === 'failed' ? 'error' : 'success', results, errors: outcome.kind === 'failed' ? [outcome.error] : [] });
            }
            sink.end(index);
          }),
        );
      }
      if (running.length === 1) await running[0];
      else if (running.length > 1) await Promise.all(running);
    },
  };
}

/**
 * What the ledger keeps of a result delivered in its own answer: everything but inline image bytes, which
 * that answer carried (a day of base64 images per replica would be its heap, or Redis's memory); an image
 * by URL is kept whole, since its URL is all there is.
 */
function withoutInlineData(result: ImageResult): ImageResult {
  if (result.imageBase64Data === undefined && result.imageDataURI === undefined) return result;
  const { imageBase64Data: _base64, imageDataURI: _dataURI, ...kept } = result;
  return kept;
}

/** Only a real taskUUID is kept: the ledger never stores a key a client made up at any length. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function inlineMegapixelsOf(task: ImageInferenceTask): number {
  return (task.numberResults * task.width * task.height) / 1e6;
}

function inlineOutputTooLarge(megapixels: number, budget: number, details: ErrorDetails): ApiError {
  return createError(
    'inlineOutputTooLarge',
    `This task's ${megapixels.toFixed(1)} megapixels of inline images would take the answer past the ${budget} megapixels of inline images one answer carries (INLINE_OUTPUT_MAX_MEGAPIXELS), with the tasks before it. Ask for outputType "URL", or send fewer tasks per request.`,
    { ...details, parameter: 'outputType', allowed: ['URL'] },
  );
}
