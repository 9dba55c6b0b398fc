/**
 * Which worker gets a task (DESIGN §6): only workers that serve its model; among those with a free slot,
 * prefer the ones that already have the model loaded, or hold jobs of it (a model swap costs seconds on a
 * GPU, and one already under way is paid for); then the less loaded of two picked at random — "power of two
 * choices", which spreads load almost as well as scanning for the least loaded without herding every gateway
 * replica onto the same worker.
 */

export interface WorkerCandidate {
  readonly id: string;
  /** Healthy and its breaker lets a job through. */
  readonly available: boolean;
  serves(model: string): boolean;
  /** Has the model loaded, or holds jobs of it that will have loaded it (the swap is paid for already). */
  hasLoaded(model: string): boolean;
  /** Whether its health report advertises this optional feature of the protocol. */
  can(capability: string): boolean;
  readonly inFlight: number;
  readonly capacity: number;
}

export type Selection<W extends WorkerCandidate> =
  | { readonly kind: 'selected'; readonly worker: W }
  /** Eligible workers exist but every one is at capacity: queue. */
  | { readonly kind: 'full' }
  /** No available worker serves the model. */
  | { readonly kind: 'none' }
  /** Available workers serve the model, but none has this capability the task needs. */
  | { readonly kind: 'incapable'; readonly missing: string };

export function selectWorker<W extends WorkerCandidate>(
  workers: readonly W[],
  model: string,
  exclude: ReadonlySet<string>,
  random: () => number,
  required: readonly string[] = noRequirements,
): Selection<W> {
  // One pass, collecting only what is needed: this runs for every task.
  let eligible = false;
  let missing: string | undefined;
  const withRoom: W[] = [];
  const loaded: W[] = [];
  for (const worker of workers) {
    if (!worker.available || !worker.serves(model) || exclude.has(worker.id)) continue;
    if (required.length > 0) {
      const lacking = required.find((capability) => !worker.can(capability));
      if (lacking !== undefined) {
        missing ??= lacking;
        continue;
      }
    }
    eligible = true;
    if (worker.inFlight >= worker.capacity) continue;
    withRoom.push(worker);
    if (worker.hasLoaded(model)) loaded.push(worker);
  }
  if (!eligible) return missing === undefined ? none : { kind: 'incapable', missing };
  if (withRoom.length === 0) return full;
  return { kind: 'selected', worker: lessLoadedOfTwo(loaded.length > 0 ? loaded : withRoom, random) };
}

const full = { kind: 'full' } as const;
const none = { kind: 'none' } as const;
const noRequirements: readonly string[] = [];

function lessLoadedOfTwo<W extends WorkerCandidate>(pool: readonly W[], random: () => number): W {
  const first = pool[Math.floor(random() * pool.length)] ?? pool[0];
  if (!first) throw new RangeError('empty pool');
  if (pool.length === 1) return first;
  const offset = 1 + Math.floor(random() * (pool.length - 1));
  const second = pool[(pool.indexOf(first) + offset) % pool.length] ?? first;
  const load = (worker: W) => worker.inFlight / worker.capacity;
  return load(second) < load(first) ? second : first;
}
