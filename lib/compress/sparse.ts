// SPDX-License-Identifier: Apache-2.0
// Bitmap sparse storage of pruned tensors: one presence bit per element plus the nonzeros, so
// a 90%-sparse float32 tensor takes about 4.2 bits per element instead of 32.
import type { Float32Like } from '../optim';
import { NodecclRangeError } from '../errors';
import { callNative, checkShape, compressNative, elementCount, float32Of } from './native';
import type { DenseTensor, SparseTensor } from './types';

/** The values of `x` in bitmap sparse form; `shape` defaults to [x.length]. */
export function toSparse(x: Float32Like, shape?: readonly number[]): SparseTensor {
  const data = float32Of(x, 'toSparse(): x');
  const s = checkShape(shape ?? [data.length], 'toSparse(): shape');
  if (elementCount(s) !== data.length) {
    throw new NodecclRangeError(`toSparse(): shape ${JSON.stringify(s)} holds ` +
      `${elementCount(s)} elements but x has ${data.length}`);
  }
  const nat = compressNative();
  const values = new Float32Array(nat.compressCountNonzero(data));
  const bitmap = new Uint8Array(Math.ceil(data.length / 8));
  callNative(() => nat.compressSparseEncode(data, bitmap, values));
  return { kind: 'sparse', shape: s, bitmap, values };
}

/** A dense record of `x` (no compression; biases and small tensors). */
export function toDense(x: Float32Like, shape?: readonly number[]): DenseTensor {
  const data = float32Of(x, 'toDense(): x');
  const s = checkShape(shape ?? [data.length], 'toDense(): shape');
  if (elementCount(s) !== data.length) {
    throw new NodecclRangeError(`toDense(): shape ${JSON.stringify(s)} holds ` +
      `${elementCount(s)} elements but x has ${data.length}`);
  }
  return { kind: 'dense', shape: s, values: data };
}
