// SPDX-License-Identifier: Apache-2.0
// The one argument check the training helpers share: a Float32Array or a float32 Tensor,
// resolved to its Float32Array.
import { NodecclTypeError } from '../errors';
import { describeValue } from '../options';

/** A parameter or gradient as the training helpers accept it. */
export type Float32Source = Float32Array | { readonly data: Float32Array; readonly dtype: string };

/**
 * The Float32Array behind `x`, or a NodecclTypeError naming `what`.
 * LIMITATION: float32 only, as the fused optimizers (their kernels are float32 loops).
 */
export function float32Data(x: unknown, what = 'value'): Float32Array {
  if (x instanceof Float32Array) return x;
  if (typeof x === 'object' && x !== null && 'data' in x && 'dtype' in x) {
    const t = x as { data: unknown; dtype: unknown };
    if (t.dtype === 'float32' && t.data instanceof Float32Array) return t.data;
    throw new NodecclTypeError(`${what} is a tensor of dtype ${describeValue(t.dtype)}; only ` +
      'float32 is supported by the training helpers');
  }
  throw new NodecclTypeError(`${what} must be a Float32Array or a float32 Tensor, got ` +
    `${describeValue(x)}`);
}
