import { randomBytes, randomUUID } from 'node:crypto';
import type { JobRequest } from '../src/dispatch/worker-protocol.js';

/** What the dispatch benchmarks send: the same plain task to clipgate, and the job it becomes to the proxy. */

export const benchModel = { air: 'civitai:4384@128713', family: 'sd1' };
const prompt = 'a lighthouse on a cliff at dusk, oil painting';

/** One imageInference task: 512×512, PNG, inline (base64) so that the answer carries the image. */
export function benchTask(): Record<string, unknown> {
  return { taskType: 'imageInference', taskUUID: randomUUID(), positivePrompt: prompt, model: benchModel.air, width: 512, height: 512, outputType: 'base64Data', outputFormat: 'PNG' };
}

/** The job clipgate makes of benchTask() (schema defaults filled in, a random seed), as the proxy sends it. */
export function benchJob(): string {
  const job: JobRequest = {
    jobId: randomUUID(),
    model: benchModel,
    positivePrompt: prompt,
    negativePrompt: '',
    width: 512,
    height: 512,
    steps: 20,
    cfgScale: 7,
    seed: (randomBytes(8).readBigUInt64BE() >> 12n).toString(),
    scheduler: 'Default',
    clipSkip: 0,
    numberResults: 1,
    outputFormat: 'PNG',
    embeddings: [],
  };
  return JSON.stringify(job);
}
