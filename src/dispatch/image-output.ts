import { randomUUID } from 'node:crypto';
import type { ImageInferenceTask } from '../contracts/image-inference-task.js';
import { seedTextToJson } from '../contracts/seed.js';
import type { ImageResult } from '../contracts/dispatcher.js';
import type { ImageStore } from './image-store.js';
import type { JobImage } from './worker-protocol.js';

/** Turns a worker's images into the public results, in the form the task asked for (DESIGN §2). */

const mediaTypes = { PNG: 'image/png', JPG: 'image/jpeg', WEBP: 'image/webp' } as const;
const extensions = { PNG: 'png', JPG: 'jpg', WEBP: 'webp' } as const;

export interface OutputContext {
  readonly store: ImageStore;
  readonly publicBaseUrl: string;
  readonly costPerMegapixelStep: number;
}

/**
 * Inline images (base64Data, dataURI) are shaped synchronously: this runs for every task, and a promise per
 * task is a cost the hot path does not need. Only outputType URL waits, for the store.
 */
export function toImageResults(task: ImageInferenceTask, images: readonly JobImage[], context: OutputContext): ImageResult[] | Promise<ImageResult[]> {
  if (task.outputType === 'URL') return storeImages(task, images, context);
  const cost = costPerImage(task, images.length, context);
  return images.map((image) => {
    const result: Mutable<ImageResult> = resultBase(task, image, cost);
    if (task.outputType === 'base64Data') result.imageBase64Data = image.data;
    else result.imageDataURI = `data:${mediaTypes[image.format]};base64,${image.data}`;
    return result;
  });
}

async function storeImages(task: ImageInferenceTask, images: readonly JobImage[], context: OutputContext): Promise<ImageResult[]> {
  const cost = costPerImage(task, images.length, context);
  const results: ImageResult[] = [];
  for (const image of images) {
    const result: Mutable<ImageResult> = resultBase(task, image, cost);
    const name = `${result.imageUUID}.${extensions[image.format]}`;
    await context.store.put(name, Buffer.from(image.data, 'base64'));
    result.imageURL = `${context.publicBaseUrl}/v1/images/${name}`;
    results.push(result);
  }
  return results;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The fields every result has, in the order clients see them; `cost` only when the task asked for it. */
function resultBase(task: ImageInferenceTask, image: JobImage, cost: number | undefined): Mutable<ImageResult> {
  const result: Mutable<ImageResult> = {
    taskType: 'imageInference',
    taskUUID: task.taskUUID,
    // The gateway names results itself: a worker's ids are not trusted as names of stored files.
    imageUUID: randomUUID(),
    seed: seedTextToJson(image.seed, task.seedAsText),
  };
  if (image.nsfw !== undefined) result.NSFWContent = image.nsfw;
  if (cost !== undefined) result.cost = cost;
  return result;
}

/** Cost of the whole task, spread over its images, so summing a response's costs gives what was spent. */
function costPerImage(task: ImageInferenceTask, imageCount: number, context: OutputContext): number | undefined {
  if (!task.includeCost) return undefined;
  const taskCost = (task.width * task.height * task.steps * task.numberResults * context.costPerMegapixelStep) / 1e6;
  return Number((taskCost / imageCount).toFixed(8));
}
