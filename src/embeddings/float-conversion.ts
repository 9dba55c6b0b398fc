/**
 * Floating-point element types an embedding may be stored in, and their conversion to float32 — the one
 * type canonical files and workers use. Every reader goes through here, so half- and bfloat16 decoding
 * is written once. All sources are little-endian (safetensors by definition, torch archives after their
 * byte-order check).
 */

/** The largest finite float16, 65504: (2 − 2^−10) × 2^15. */
export const FLOAT16_MAX = 65504;

export const floatDtypes = ['F32', 'F16', 'BF16', 'F64'] as const;
export type FloatDtype = (typeof floatDtypes)[number];

export const floatDtypeBytes: Readonly<Record<FloatDtype, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

export function isFloatDtype(dtype: string): dtype is FloatDtype {
  return (floatDtypes as readonly string[]).includes(dtype);
}

/** IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 fraction bits; exponent 0 is subnormal. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

const scratch = new DataView(new ArrayBuffer(4));

/** bfloat16 is the upper half of a float32, so widening is a shift. */
export function bfloat16ToFloat(bits: number): number {
  scratch.setUint32(0, (bits & 0xffff) << 16);
  return scratch.getFloat32(0);
}

/**
 * Converts `count` elements of a little-endian `dtype` array to float32; element k is read from array index
 * `elementIndex(k)`, which lets strided torch views be gathered without a copy of the storage. Callers check
 * that every index is inside `bytes`; a stray one still only throws (DataView is bounds-checked).
 */
export function toFloat32(
  bytes: Uint8Array,
  dtype: FloatDtype,
  count: number,
  elementIndex: (k: number) => number = (k) => k,
): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = floatDtypeBytes[dtype];
  const values = new Float32Array(count);
  for (let k = 0; k < count; k += 1) {
    const at = elementIndex(k) * size;
    switch (dtype) {
      case 'F32':
        values[k] = view.getFloat32(at, true);
        break;
      case 'F16':
        values[k] = halfToFloat(view.getUint16(at, true));
        break;
      case 'BF16':
        values[k] = bfloat16ToFloat(view.getUint16(at, true));
        break;
      case 'F64':
        // A finite double beyond float32's range becomes ±Infinity here and is refused as non-finite later.
        values[k] = view.getFloat64(at, true);
        break;
    }
  }
  return values;
}
