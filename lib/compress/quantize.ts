// SPDX-License-Identifier: Apache-2.0
// Quantized export of weights: symmetric int8 or int4 codes with one float32 scale per channel
// or per block, so that each weight is off by at most half its group's scale.
import type { Float32Like } from '../optim';
import { NodecclRangeError, NodecclTypeError } from '../errors';
import { checkOptions, describeValue } from '../options';
import { callNative, checkShape, compressNative, elementCount, float32Of } from './native';
import { matrixView, type QuantizedTensor } from './types';

/** Options of {@link quantizeWeights}. */
export interface QuantizeWeightsOptions {
  /** 8 (int8) or 4 (int4, two per byte). Default 8. */
  bits?: 8 | 4;
  /** Shape of x; default [x.length]. Quantization sees it as [shape[0], rest]. */
  shape?: readonly number[];
  /** `'channel'` (default): one scale per row or column; `'block'`: per blockSize elements. */
  scheme?: 'channel' | 'block';
  /**
   * Channel axis of the [rows, cols] view: 0 (default, torch's Linear weight [out, in]) gives one
   * scale per row; 1 (an [in, out] weight, as in x W) one per column.
   */
  axis?: 0 | 1;
  /** Elements per block for scheme 'block'. Default 64. */
  blockSize?: number;
}

/**
 * Quantizes `x` to int8 or int4 with per-channel or per-block scales.
 *
 * @throws NodecclTypeError/NodecclRangeError for unknown options or values, NaN or infinite x.
 */
export function quantizeWeights(x: Float32Like, options: QuantizeWeightsOptions = {}):
  QuantizedTensor {
  const o = checkOptions('quantizeWeights()', options,
    ['bits', 'shape', 'scheme', 'axis', 'blockSize']);
  const data = float32Of(x, 'quantizeWeights(): x');
  const bits = o.bits ?? 8;
  const scheme = o.scheme ?? 'channel';
  const axis = o.axis ?? 0;
  if (bits !== 8 && bits !== 4) {
    throw new NodecclRangeError(
      `quantizeWeights(): bits must be 8 or 4, got ${describeValue(bits)}`);
  }
  if (scheme !== 'channel' && scheme !== 'block') {
    throw new NodecclTypeError(
      `quantizeWeights(): scheme must be 'channel' or 'block', got ${describeValue(scheme)}`);
  }
  if (axis !== 0 && axis !== 1) {
    throw new NodecclRangeError(
      `quantizeWeights(): axis must be 0 or 1, got ${describeValue(axis)}`);
  }
  const blockSize = scheme === 'block' ? o.blockSize ?? 64 : 0;
  if (scheme === 'block' && (!Number.isSafeInteger(blockSize) || blockSize < 1)) {
    throw new NodecclRangeError(
      `quantizeWeights(): blockSize must be a whole number >= 1, got ${describeValue(blockSize)}`);
  }
  const shape = checkShape(o.shape ?? [data.length], 'quantizeWeights(): shape');
  if (elementCount(shape) !== data.length) {
    throw new NodecclRangeError(`quantizeWeights(): shape ${JSON.stringify(shape)} holds ` +
      `${elementCount(shape)} elements but x has ${data.length}`);
  }

  const [rows, cols] = matrixView(shape);
  const groups = blockSize > 0 ? Math.ceil(data.length / blockSize) : axis === 0 ? rows : cols;
  const scales = new Float32Array(groups);
  const q = new Uint8Array(bits === 8 ? data.length : Math.ceil(data.length / 2));
  callNative(() => compressNative().compressQuantize(data, rows, cols, bits, axis, blockSize,
    scales, q));
  return { kind: 'quantized', shape, bits, axis, blockSize, scales, q };
}
