import { randomUUID } from 'node:crypto';
import { openTaskSocket } from '../support/task-socket-client.js';
import { embeddingAir, exchange, imageTask, invariantBreaches, processFootprint, startReliabilityStack, tally, type Outcome } from './reliability-stack.js';

/**
 * The soak: a real gateway process under a steady mixed load for a bounded time, on loopback only — warm and
 * cold embeddings, batches, invalid tasks, WebSockets opened, used and closed — with its resident memory and
 * open descriptors sampled as it goes. Used by `npm run bench:soak` (minutes) and, short, by the suite in CI.
 */

export interface SoakSample {
  readonly seconds: number;
  readonly rssMiB: number;
  readonly fds: number;
  readonly requests: number;
}

export interface SoakReport {
  readonly samples: readonly SoakSample[];
  /** After the load stopped and the gateway sat idle for a moment. */
  readonly idle: SoakSample;
  readonly requests: number;
  readonly sockets: number;
  readonly outcomes: Record<string, number>;
  readonly breaches: readonly string[];
  readonly socketFailures: readonly string[];
}

const COLD_EMBEDDINGS = 400;
const WARM = 20;

export async function runSoak(options: { durationMs: number; concurrency: number; sampleEveryMs: number }): Promise<SoakReport> {
  const stack = await startReliabilityStack({ embeddings: WARM + COLD_EMBEDDINGS });
  const pid = stack.gateway.child.pid!;
  const outcomes: Outcome[] = [];
  const socketFailures: string[] = [];
  let sockets = 0;
  let nextCold = WARM;
  let requests = 0;
  const started = Date.now();
  const samples: SoakSample[] = [];
  const sample = (): SoakSample => ({ seconds: Math.round((Date.now() - started) / 100) / 10, ...processFootprint(pid), requests });
  samples.push(sample());
  const sampler = setInterval(() => samples.push(sample()), options.sampleEveryMs);
  const warm = (index: number) => imageTask({ embeddings: [{ model: embeddingAir(index % WARM), weight: 0.6 }] });

  async function oneSocket(): Promise<void> {
    sockets++;
    try {
      const socket = await openTaskSocket(`ws://127.0.0.1:${stack.port}/v1`);
      await socket.authenticate('soak-key');
      const tasks = [warm(sockets), warm(sockets + 1)];
      socket.send(tasks);
      const frames = await socket.waitForFrames(3, 15_000);
      const delivered = frames.flatMap((frame) => frame.data ?? []).filter((item) => tasks.some((task) => task['taskUUID'] === item['taskUUID']));
      if (delivered.length !== 2) socketFailures.push(`socket ${sockets}: ${delivered.length} of 2 images`);
      socket.close();
      await socket.closed;
    } catch (error) {
      socketFailures.push(`socket ${sockets}: ${(error as Error).message.slice(0, 200)}`);
    }
  }

  const deadline = started + options.durationMs;
  const client = async (clientIndex: number): Promise<void> => {
    for (let round = 0; Date.now() < deadline; round++) {
      requests++;
      const pick = (round * 7 + clientIndex) % 20;
      if (pick < 3) {
        await oneSocket();
        continue;
      }
      let tasks: Record<string, unknown>[];
      if (pick < 13) tasks = [warm(round)];
      else if (pick < 15) tasks = [imageTask({ embeddings: [{ model: embeddingAir(nextCold < WARM + COLD_EMBEDDINGS ? nextCold++ : round % WARM) }] })];
      else if (pick < 17) tasks = [warm(round), warm(round + 1), imageTask(), { taskType: 'ping', ping: true, taskUUID: randomUUID() }];
      else tasks = [imageTask({ width: 100 + (round % 7) }), imageTask({ model: 'civitai:1@1' })];
      outcomes.push(await exchange(stack.port, tasks));
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, (_, index) => client(index)));
    clearInterval(sampler);
    samples.push(sample());
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const idle = sample();
    // A batch's ping is answered with one data item, as each image task (numberResults 1) is.
    return { samples, idle, requests, sockets, outcomes: tally(outcomes), breaches: invariantBreaches(outcomes), socketFailures };
  } finally {
    clearInterval(sampler);
    await stack.close();
  }
}

/**
 * Early and late peaks of a sampled figure, after the first fifth of the samples (start-up, pools filling,
 * first lookups): the first and the last third of the rest. A leak shows as a late peak above the early one.
 */
export function trendOf(samples: readonly SoakSample[], figure: 'rssMiB' | 'fds'): { early: number; late: number; ratio: number } {
  const settled = samples.slice(Math.floor(samples.length / 5));
  const third = Math.max(1, Math.floor(settled.length / 3));
  const early = Math.max(...settled.slice(0, third).map((sample) => sample[figure]));
  const late = Math.max(...settled.slice(-third).map((sample) => sample[figure]));
  return { early, late, ratio: Math.round((late / early) * 100) / 100 };
}
