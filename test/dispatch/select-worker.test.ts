import { describe, expect, it } from 'vitest';
import { selectWorker, type WorkerCandidate } from '../../src/dispatch/select-worker.js';

function worker(id: string, options: Partial<{ available: boolean; models: string[]; loaded: string[]; inFlight: number; capacity: number; capabilities: string[]; batches: string[]; freeSlot: boolean }> = {}): WorkerCandidate {
  const models = options.models ?? ['m'];
  const capabilities = options.capabilities ?? [];
  const loaded = options.loaded ?? [];
  return {
    id,
    available: options.available ?? true,
    serves: (model) => models.includes(model),
    hasLoaded: (model) => loaded.includes(model),
    can: (capability) => capabilities.includes(capability),
    holdsBatchable: (key) => (options.batches ?? []).includes(key),
    hasFreeModelSlot: () => options.freeSlot ?? false,
    inFlight: options.inFlight ?? 0,
    capacity: options.capacity ?? 4,
  };
}

/** A repeatable stream of numbers in [0, 1). */
function sequence(seed = 1): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

describe('selectWorker', () => {
  it('only considers available workers that serve the model and were not tried', () => {
    const workers = [worker('a', { available: false }), worker('b', { models: ['other'] }), worker('c'), worker('d')];
    const picked = new Set<string>();
    const random = sequence();
    for (let i = 0; i < 50; i++) {
      const selection = selectWorker(workers, { model: 'm' }, new Set(['d']), random);
      if (selection.kind === 'selected') picked.add(selection.worker.id);
    }
    expect([...picked]).toEqual(['c']);
    expect(selectWorker(workers, { model: 'nobody-serves-this' }, new Set(), random)).toEqual({ kind: 'none' });
  });

  it('says full when every eligible worker is at capacity', () => {
    const workers = [worker('a', { inFlight: 4 }), worker('b', { inFlight: 2, capacity: 2 })];
    expect(selectWorker(workers, { model: 'm' }, new Set(), sequence())).toEqual({ kind: 'full' });
  });

  it('prefers a worker with the model loaded while it has room', () => {
    const workers = [worker('a'), worker('b', { loaded: ['m'], inFlight: 3 }), worker('c')];
    const random = sequence(7);
    for (let i = 0; i < 20; i++) {
      const selection = selectWorker(workers, { model: 'm' }, new Set(), random);
      expect(selection.kind === 'selected' && selection.worker.id).toBe('b');
    }
    const full = [worker('a'), worker('b', { loaded: ['m'], inFlight: 4 })];
    const fallback = selectWorker(full, { model: 'm' }, new Set(), random);
    expect(fallback.kind === 'selected' && fallback.worker.id).toBe('a');
  });

  it('spreads load: the less loaded of two random picks wins', () => {
    const workers = [worker('idle', { inFlight: 0 }), worker('busy', { inFlight: 3 })];
    const random = sequence(3);
    for (let i = 0; i < 20; i++) {
      const selection = selectWorker(workers, { model: 'm' }, new Set(), random);
      expect(selection.kind === 'selected' && selection.worker.id).toBe('idle');
    }
  });

  it('takes only workers with the capabilities the task needs, and says which one is missing', () => {
    const plain = worker('plain', { loaded: ['m'] });
    const checker = worker('checker', { capabilities: ['nsfwCheck'] });
    for (let round = 0; round < 20; round++) {
      expect(selectWorker([plain, checker], { model: 'm', required: ['nsfwCheck'] }, new Set(), Math.random)).toEqual({ kind: 'selected', worker: checker });
    }
    expect(selectWorker([plain], { model: 'm', required: ['nsfwCheck'] }, new Set(), Math.random)).toEqual({ kind: 'incapable', missing: 'nsfwCheck' });
    expect(selectWorker([plain], { model: 'other', required: ['nsfwCheck'] }, new Set(), Math.random)).toEqual({ kind: 'none' });
  });

  it('joins a batch of compatible held jobs once no worker with the model is idle', () => {
    const batching = worker('batching', { loaded: ['m'], inFlight: 3, batches: ['m|512x512'] });
    const lighter = worker('lighter', { loaded: ['m'], inFlight: 1 });
    const random = sequence(5);
    for (let i = 0; i < 20; i++) {
      const selection = selectWorker([batching, lighter], { model: 'm', batchKey: 'm|512x512' }, new Set(), random);
      expect(selection.kind === 'selected' && selection.worker.id).toBe('batching');
    }
    // Another key: the held jobs cannot share its pass, so load decides.
    const other = selectWorker([batching, lighter], { model: 'm', batchKey: 'm|768x768' }, new Set(), random);
    expect(other.kind === 'selected' && other.worker.id).toBe('lighter');
  });

  it('prefers an idle worker with the model over joining a batch: it starts at once', () => {
    const batching = worker('batching', { loaded: ['m'], inFlight: 2, batches: ['k'] });
    const idle = worker('idle', { loaded: ['m'], inFlight: 0 });
    const random = sequence(9);
    for (let i = 0; i < 20; i++) {
      const selection = selectWorker([batching, idle], { model: 'm', batchKey: 'k' }, new Set(), random);
      expect(selection.kind === 'selected' && selection.worker.id).toBe('idle');
    }
  });

  it('never joins a batch on a worker that is full', () => {
    const batching = worker('batching', { loaded: ['m'], inFlight: 4, capacity: 4, batches: ['k'] });
    const busy = worker('busy', { loaded: ['m'], inFlight: 3 });
    const selection = selectWorker([batching, busy], { model: 'm', batchKey: 'k' }, new Set(), sequence());
    expect(selection.kind === 'selected' && selection.worker.id).toBe('busy');
  });

  it('swaps a model in where it unloads nothing, when no worker has it', () => {
    const full = worker('full-of-models', { inFlight: 0 });
    const roomy = worker('free-slot', { inFlight: 2, freeSlot: true });
    const random = sequence(4);
    for (let i = 0; i < 20; i++) {
      const selection = selectWorker([full, roomy], { model: 'm' }, new Set(), random);
      expect(selection.kind === 'selected' && selection.worker.id).toBe('free-slot');
    }
    // A worker that has the model still comes first.
    const loaded = worker('loaded', { loaded: ['m'], inFlight: 3 });
    const selection = selectWorker([roomy, loaded], { model: 'm' }, new Set(), random);
    expect(selection.kind === 'selected' && selection.worker.id).toBe('loaded');
  });
});
