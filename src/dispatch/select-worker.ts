/**
 * Which worker gets a task (DESIGN §6): only workers that serve its model; among those with a free slot,
 * prefer the ones that already have the model loaded, or hold jobs of it (a model swap costs seconds on a
 * GPU, and one already under way is paid for); among those, when none of them is idle, the ones that batch and
 * hold jobs the task can share a UNet pass with (a batch of four costs far less than four passes); then the
 * less loaded of two picked at random — "power of two choices", which spreads load almost as well as scanning
 * for the least loaded without herding every gateway replica onto the same worker. An idle worker with the
 * model beats joining a batch: it starts at once, and a batch only pays off once every GPU is busy.
 *
 * A `patient` task waits for a worker that has its model rather than take a free slot elsewhere that would
 * swap it in: at saturation a slot frees up somewhere every few hundred milliseconds, and taking whichever
 * frees first evicts a model some other worker's queue still needs (the pool bounds the patience). A swap
 * goes, where it can, to a worker with a free model slot: loading there unloads nothing another task may need.
 */

/** What a task asks of its worker. */
export interface Placement {
  readonly model: string;
  /** batchKey(job): which held jobs it could share a UNet pass with. */
  readonly batchKey?: string;
  /** Optional protocol features the job uses. */
  readonly required?: readonly string[];
  /** Wait (`full`) while every worker that has the model is full, rather than swap it in on another. */
  readonly patient?: boolean;
}

export interface WorkerCandidate {
  readonly id: string;
  /** Healthy and its breaker lets a job through. */
  readonly available: boolean;
  serves(model: string): boolean;
  /** Has the model loaded, or holds jobs of it that will have loaded it (the swap is paid for already). */
  hasLoaded(model: string): boolean;
  /** Whether its health report advertises this optional feature of the protocol. */
  can(capability: string): boolean;
  /** Can load one more model without unloading one (its health's `maxLoadedModels` is not reached). */
  hasFreeModelSlot(): boolean;
  /** Batches (its health's `batchSize` > 1) and holds jobs of this batch key: the task can join their pass. */
  holdsBatchable(batchKey: string): boolean;
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
  placement: Placement,
  exclude: ReadonlySet<string>,
  random: () => number,
): Selection<W> {
  const { model, batchKey, required = noRequirements, patient = false } = placement;
  // One pass, collecting only what is needed: this runs for every task.
  let eligible = false;
  let missing: string | undefined;
  let loadedIdle = false;
  let loadedFull = false;
  const withRoom: W[] = [];
  const loaded: W[] = [];
  const batchable: W[] = [];
  const freeSlot: W[] = [];
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
    if (worker.inFlight >= worker.capacity) {
      if (patient && !loadedFull) loadedFull = worker.hasLoaded(model);
      continue;
    }
    withRoom.push(worker);
    if (!worker.hasLoaded(model)) {
      if (loaded.length === 0 && worker.hasFreeModelSlot()) freeSlot.push(worker);
      continue;
    }
    loaded.push(worker);
    if (worker.inFlight === 0) loadedIdle = true;
    else if (batchKey !== undefined && worker.holdsBatchable(batchKey)) batchable.push(worker);
  }
  if (!eligible) return missing === undefined ? none : { kind: 'incapable', missing };
  if (withRoom.length === 0 || (loaded.length === 0 && loadedFull)) return full;
  const preferred = batchable.length > 0 && !loadedIdle ? batchable : loaded.length > 0 ? loaded : freeSlot.length > 0 ? freeSlot : withRoom;
  return { kind: 'selected', worker: lessLoadedOfTwo(preferred, random) };
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
