import type { JobRequest } from './worker-protocol.js';

/**
 * The jobs a worker may draw in one UNet pass (worker protocol v1, `batchSize`): same model, size, steps,
 * scheduler, CFG and LoRA set. Prompts, embeddings, seeds, clip skip and outputs may differ: they only change
 * each image's conditioning and noise, which a batch keeps per image. The reference worker applies the same
 * rule (worker/clipgate_worker/batching.py); selection uses it to send a job where compatible ones wait.
 */
export function batchKey(job: Pick<JobRequest, 'model' | 'width' | 'height' | 'steps' | 'scheduler' | 'cfgScale' | 'loras'>): string {
  let key = `${job.model.air}|${job.width}x${job.height}|${job.steps}|${job.scheduler}|${job.cfgScale}`;
  for (const lora of job.loras ?? []) key += `|${lora.sha256}:${lora.weight}`;
  return key;
}
