import { EmbeddingFileError } from './embedding-file-error.js';
import type { FloatDtype } from './float-conversion.js';
import { describeKind, isKind, type PickleDict, type PickleTuple, type PickleValue, type TorchStorageRef, type TorchTensorRef } from './pickle-values.js';

/**
 * The only Python globals an embedding pickle may name, and what "calling" each one means here: a pure
 * data constructor that checks its arguments and returns an inert record. These are exactly the names
 * torch.save writes for a dict of float tensors; anything else (os.system, builtins.eval, …) is what a
 * malicious pickle needs, and is refused by the unpickler before it is ever looked at again.
 */
export const allowedGlobals = [
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter',
  'torch.FloatStorage',
  'torch.HalfStorage',
  'torch.BFloat16Storage',
  'torch.DoubleStorage',
] as const;

export type AllowedGlobal = (typeof allowedGlobals)[number];

export function isAllowedGlobal(name: string): name is AllowedGlobal {
  return (allowedGlobals as readonly string[]).includes(name);
}

const storageDtypes: Partial<Record<AllowedGlobal, FloatDtype>> = {
  'torch.FloatStorage': 'F32',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
  'torch.DoubleStorage': 'F64',
};

/** Tensors of embeddings are 1-D or 2-D; a little headroom keeps odd but harmless views readable. */
const MAX_TENSOR_RANK = 8;

/** REDUCE: what `callable(*args)` builds, for the allowlisted callables only. */
export function reduceAllowedGlobal(callable: PickleValue | undefined, args: PickleValue | undefined): PickleValue {
  if (!isKind(callable, 'global')) {
    throw new EmbeddingFileError('unsafe', `the pickle calls a ${describeKind(callable)} with REDUCE; only the allowlisted torch rebuild functions may be called`);
  }
  if (!isKind(args, 'tuple')) throw unparseable(`REDUCE of ${callable.name} got ${describeKind(args)} arguments instead of a tuple`);
  switch (callable.name) {
    case 'collections.OrderedDict':
      if (args.items.length !== 0) throw unparseable('collections.OrderedDict is called with arguments; torch.save pickles it empty and fills it afterwards');
      return { kind: 'dict', ordered: true, entries: new Map() };
    case 'torch._utils._rebuild_tensor_v2':
      return rebuildTensor(args, true);
    case 'torch._utils._rebuild_tensor':
      return rebuildTensor(args, false);
    case 'torch._utils._rebuild_parameter':
      return rebuildParameter(args);
    case 'torch.FloatStorage':
    case 'torch.HalfStorage':
    case 'torch.BFloat16Storage':
    case 'torch.DoubleStorage':
      throw new EmbeddingFileError('unsafe', `the pickle calls ${callable.name} with REDUCE; storages may only arrive through persistent ids`);
  }
}

/**
 * BINPERSID: torch's persistent_load. The id is ('storage', <storage class>, key, location, numel); the
 * location (cpu, cuda:0, …) is ignored, since nothing is ever placed on a device here.
 */
export function loadPersistentStorage(pid: PickleValue | undefined): TorchStorageRef {
  if (!isKind(pid, 'tuple')) throw unparseable(`a persistent id is a ${describeKind(pid)}, not torch's ('storage', …) tuple`);
  const [typename, storageClass, key, location, numel] = pid.items;
  if (pid.items.length !== 5 || typename !== 'storage') {
    throw unparseable(`a persistent id is not torch's ('storage', class, key, location, numel) tuple (it has ${pid.items.length} items)`);
  }
  const dtype = isKind(storageClass, 'global') ? storageDtypes[storageClass.name] : undefined;
  if (dtype === undefined) {
    const found = isKind(storageClass, 'global') ? storageClass.name : describeKind(storageClass);
    throw unparseable(`a persistent id names ${found} as its storage class; expected torch.FloatStorage, HalfStorage, BFloat16Storage or DoubleStorage`);
  }
  if (typeof key !== 'string' || key.length === 0 || key.length > 64 || key.includes('/')) {
    throw unparseable('a persistent id has no usable storage key');
  }
  if (typeof location !== 'string') throw unparseable('a persistent id has no storage location');
  if (!isCount(numel)) throw unparseable(`a persistent id has element count ${describeKind(numel)} instead of a non-negative integer`);
  return { kind: 'storage', dtype, key, numel };
}

/**
 * _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) and
 * the older _rebuild_tensor(storage, storage_offset, size, stride).
 */
function rebuildTensor(args: PickleTuple, v2: boolean): TorchTensorRef {
  const name = v2 ? 'torch._utils._rebuild_tensor_v2' : 'torch._utils._rebuild_tensor';
  const arity = args.items.length;
  if (v2 ? arity !== 6 && arity !== 7 : arity !== 4) {
    throw unparseable(`${name} is called with ${arity} arguments; expected ${v2 ? '6 or 7' : '4'}`);
  }
  const [storage, offset, size, stride, requiresGrad, hooks] = args.items;
  if (!isKind(storage, 'storage')) throw unparseable(`${name} gets a ${describeKind(storage)} as its storage`);
  if (!isCount(offset)) throw unparseable(`${name} gets a storage offset that is not a non-negative integer`);
  const sizes = countTuple(size);
  const strides = countTuple(stride);
  if (sizes === undefined || strides === undefined || sizes.length !== strides.length || sizes.length > MAX_TENSOR_RANK) {
    throw unparseable(`${name} gets no matching size and stride tuples of at most ${MAX_TENSOR_RANK} non-negative integers`);
  }
  if (v2) {
    if (typeof requiresGrad !== 'boolean') throw unparseable(`${name} gets ${describeKind(requiresGrad)} for requires_grad`);
    checkNoHooks(hooks, name);
  }
  return { kind: 'tensor', storage, offset, size: sizes, stride: strides };
}

/** _rebuild_parameter(data, requires_grad, backward_hooks): a Parameter is its data tensor here. */
function rebuildParameter(args: PickleTuple): TorchTensorRef {
  const [data, requiresGrad, hooks] = args.items;
  if (args.items.length !== 3) throw unparseable(`torch._utils._rebuild_parameter is called with ${args.items.length} arguments; expected 3`);
  if (!isKind(data, 'tensor')) throw unparseable(`torch._utils._rebuild_parameter gets a ${describeKind(data)} instead of a tensor`);
  if (typeof requiresGrad !== 'boolean') throw unparseable(`torch._utils._rebuild_parameter gets ${describeKind(requiresGrad)} for requires_grad`);
  checkNoHooks(hooks, 'torch._utils._rebuild_parameter');
  return data;
}

/** Backward hooks are functions; a saved embedding has none, and honouring one would mean calling it. */
function checkNoHooks(hooks: PickleValue | undefined, name: string): asserts hooks is PickleDict {
  if (!isKind(hooks, 'dict') || hooks.entries.size !== 0) {
    throw unparseable(`${name} gets ${isKind(hooks, 'dict') ? `${hooks.entries.size} backward hooks` : describeKind(hooks)}; expected an empty OrderedDict`);
  }
}

function countTuple(value: PickleValue | undefined): number[] | undefined {
  if (!isKind(value, 'tuple')) return undefined;
  const counts: number[] = [];
  for (const item of value.items) {
    if (!isCount(item)) return undefined;
    counts.push(item);
  }
  return counts;
}

function isCount(value: PickleValue | undefined): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function unparseable(message: string): EmbeddingFileError {
  return new EmbeddingFileError('unparseable', message);
}
