import { randomUUID } from 'node:crypto';
import type { ImageInferenceTask } from '../tasks/image-inference-schema.js';
import { seedToJson } from '../tasks/seed.js';
import type { ImageResult } from './dispatcher.js';
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

export async function toImageResults(task: ImageInferenceTask, images: readonly JobImage[], context: OutputContext): Promise<ImageResult[]> {
  // Cost of the whole task, spread over its images, so summing a response's costs gives what was spent.
  const taskCost = (task.width * task.height * task.steps * task.numberResults * context.costPerMegapixelStep) / 1e6;
  const results: ImageResult[] = [];
  for (const image of images) {
    const common = {
      taskType: 'imageInference' as const,
      taskUUID: task.taskUUID,
      // The gateway names results itself: a worker's ids are not trusted as names of stored files.
      imageUUID: randomUUID(),
      seed: seedToJson(BigInt(image.seed)),
      ...(task.includeCost && { cost: Number((taskCost / images.length).toFixed(8)) }),
    };
    switch (task.outputType) {
      case 'base64Data':
        results.push({ ...common, imageBase64Data: image.data });
        break;
      case 'dataURI':
        results.push({ ...common, imageDataURI: `data:${mediaTypes[image.format]};base64,${image.data}` });
        break;
      case 'URL': {
        const name = `${common.imageUUID}.${extensions[image.format]}`;
        await context.store.put(name, Buffer.from(image.data, 'base64'));
        results.push({ ...common, imageURL: `${context.publicBaseUrl}/v1/images/${name}` });
      }
    }
  }
  return results;
}
