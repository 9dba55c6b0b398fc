import type { FloatDtype } from './float-conversion.js';
import type { AllowedGlobal } from './torch-globals.js';

/**
 * What the restricted unpickler builds: plain data only. Python objects that torch.save pickles by calling
 * a function (tensors, storages, OrderedDicts) are represented as inert records describing what the call
 * would have made; nothing here can run code.
 */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | PickleBytes
  | PickleTuple
  | PickleList
  | PickleDict
  | PickleGlobal
  | TorchStorageRef
  | TorchTensorRef;

/** The hashable values a dict key may be here; tuples and the rest never key an embedding's dicts. */
export type PickleKey = null | boolean | number | bigint | string;

export interface PickleBytes {
  readonly kind: 'bytes';
  readonly bytes: Uint8Array;
}

export interface PickleTuple {
  readonly kind: 'tuple';
  readonly items: readonly PickleValue[];
}

export interface PickleList {
  readonly kind: 'list';
  readonly items: PickleValue[];
}

export interface PickleDict {
  readonly kind: 'dict';
  /** Built by collections.OrderedDict rather than a dict literal. */
  readonly ordered: boolean;
  readonly entries: Map<PickleKey, PickleValue>;
}

/** A reference to one of the allowlisted globals, by name; resolved only by REDUCE and BINPERSID. */
export interface PickleGlobal {
  readonly kind: 'global';
  readonly name: AllowedGlobal;
}

/** What torch's persistent_load would fetch: `<archive>/data/<key>`, numel elements of dtype. */
export interface TorchStorageRef {
  readonly kind: 'storage';
  readonly dtype: FloatDtype;
  readonly key: string;
  readonly numel: number;
}

/** A tensor view on a storage, as torch._utils._rebuild_tensor_v2 would make it. Sizes and strides in elements. */
export interface TorchTensorRef {
  readonly kind: 'tensor';
  readonly storage: TorchStorageRef;
  readonly offset: number;
  readonly size: readonly number[];
  readonly stride: readonly number[];
}

export function isKind<K extends Exclude<PickleValue, null | boolean | number | bigint | string>['kind']>(
  value: PickleValue | undefined,
  kind: K,
): value is Extract<PickleValue, { kind: K }> {
  return typeof value === 'object' && value !== null && value.kind === kind;
}

/** A short description of a value's type for messages, never its content. */
export function describeKind(value: PickleValue | undefined): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'None';
  if (typeof value === 'object') return value.kind === 'dict' && value.ordered ? 'OrderedDict' : value.kind;
  return typeof value;
}
