// SPDX-License-Identifier: Apache-2.0
// Types exactly what bindings/compress.cc exports, and the shared argument helpers of the
// compression modules. Declared here rather than in lib/native.ts so that this feature's
// native surface stays in one folder; `compressNative()` is the only way in.
import { fromNative, NodecclTypeError } from '../errors';
import { native } from '../native';
import type { Float32Like } from '../optim';
import { describeValue } from '../options';

/** The compression functions of the addon; all synchronous, typed arrays used in place. */
export interface NativeCompress {
  compressMagnitudeMask(tensors: Float32Array[], sparsity: number, masks: Uint8Array[]): number;
  compressApplyMask(tensors: Float32Array[], masks: Uint8Array[]): void;
  compressCountNonzero(x: Float32Array): number;
  compressSparseEncode(x: Float32Array, bitmap: Uint8Array, values: Float32Array): number;
  compressSparseDecode(bitmap: Uint8Array, values: Float32Array, out: Float32Array): void;
  compressPackBits(codes: Uint8Array, bits: number, packed: Uint8Array): void;
  compressUnpackBits(packed: Uint8Array, bits: number, codes: Uint8Array): void;
  compressKMeans(x: Float32Array, k: number, seed: number, maxIterations: number,
                 centroids: Float32Array, codes: Uint8Array): { iterations: number;
                                                                inertia: number };
  compressQuantize(x: Float32Array, rows: number, cols: number, bits: number, axis: number,
                   blockSize: number, scales: Float32Array, q: Uint8Array | Int8Array): void;
  compressDequantize(q: Uint8Array | Int8Array, scales: Float32Array, rows: number, cols: number,
                     bits: number, axis: number, blockSize: number, out: Float32Array): void;
  compressDistillLoss(student: Float32Array, teacher: Float32Array, labels: Int32Array,
                      classes: number, temperature: number, alpha: number,
                      grad: Float32Array | null): { loss: number; soft: number; hard: number };
}

/** The addon's compression functions. Throws ERR_NODECCL_LOAD when the addon is missing. */
export function compressNative(): NativeCompress {
  return native() as unknown as NativeCompress;
}

/** Runs a native call, turning its errors into NodecclTypeError/RangeError/NodecclError. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fromNative(e);
  }
}

/** The Float32Array behind a Float32Array or float32 tensor, or a TypeError naming `what`. */
export function float32Of(x: Float32Like | unknown, what: string): Float32Array {
  if (x instanceof Float32Array) return x;
  const data = (x as { data?: unknown } | null)?.data;
  if (data instanceof Float32Array) return data;
  throw new NodecclTypeError(
    `${what} must be a Float32Array or a float32 tensor, got ${describeValue(x)}`);
}

/** Number of elements of `shape`, checking each dimension is a whole number >= 0. */
export function checkShape(shape: unknown, what: string): number[] {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new NodecclTypeError(
      `${what} must be an array of whole numbers >= 0, got ${JSON.stringify(shape)}`);
  }
  return shape.slice();
}

/** The product of the dimensions (1 for a scalar shape []). */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
