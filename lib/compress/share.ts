// SPDX-License-Identifier: Apache-2.0
// Weight sharing: k-means (k-means++ seeded, deterministic for a seed) clusters a tensor's
// weights into 2^bits shared values; each weight keeps only its packed bits-bit cluster index.
import type { Float32Like } from '../optim';
import { NodecclRangeError, NodecclTypeError } from '../errors';
import { checkOptions, describeValue } from '../options';
import { callNative, checkShape, compressNative, elementCount, float32Of } from './native';
import type { SharedTensor } from './types';

/** Options of {@link shareWeights}. */
export interface ShareOptions {
  /** Bits per index, 2..8: 2^bits shared values. Required. */
  bits: number;
  /** Shape recorded with the result; default [x.length]. */
  shape?: readonly number[];
  /** Seed of the k-means++ draws; the same seed and weights give the same result. Default 1. */
  seed?: number;
  /** Lloyd iterations at most (stops earlier when no assignment changes). Default 100. */
  maxIterations?: number;
  /**
   * Share only the nonzeros and store a bitmap of them (for pruned tensors: zeros stay exact
   * and cost one bit). Default: true when at least half the elements are zero.
   */
  sparse?: boolean;
}

/** {@link shareWeights}'s result: the record and how the clustering went. */
export interface ShareResult {
  tensor: SharedTensor;
  /** Lloyd iterations run. */
  iterations: number;
  /** Sum of squared differences between the weights and their shared values. */
  inertia: number;
}

/**
 * Clusters the weights of `x` into 2^bits shared values with 1-D k-means.
 *
 * @throws NodecclRangeError for bits outside 2..8, NaN or infinite weights.
 */
export function shareWeights(x: Float32Like, options: ShareOptions): ShareResult {
  const o = checkOptions('shareWeights()', options,
    ['bits', 'shape', 'seed', 'maxIterations', 'sparse']);
  const data = float32Of(x, 'shareWeights(): x');
  const bits = o.bits;
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) {
    throw new NodecclRangeError(
      `shareWeights(): bits must be a whole number in 2..8, got ${describeValue(bits)}`);
  }
  const shape = checkShape(o.shape ?? [data.length], 'shareWeights(): shape');
  if (elementCount(shape) !== data.length) {
    throw new NodecclRangeError(`shareWeights(): shape ${JSON.stringify(shape)} holds ` +
      `${elementCount(shape)} elements but x has ${data.length}`);
  }
  if (o.sparse !== undefined && typeof o.sparse !== 'boolean') {
    throw new NodecclTypeError(
      `shareWeights(): sparse must be a boolean, got ${describeValue(o.sparse)}`);
  }
  const nat = compressNative();

  // The points to cluster: every element, or only the nonzeros behind a bitmap.
  const nnz = nat.compressCountNonzero(data);
  const sparse = o.sparse ?? nnz * 2 <= data.length;
  let points = data;
  let bitmap: Uint8Array | null = null;
  if (sparse) {
    points = new Float32Array(nnz);
    bitmap = new Uint8Array(Math.ceil(data.length / 8));
    callNative(() => nat.compressSparseEncode(data, bitmap as Uint8Array, points));
  }

  const k = 2 ** bits;
  const codebook = new Float32Array(k);
  const codes = new Uint8Array(points.length);
  const r = callNative(() => nat.compressKMeans(points, k, o.seed ?? 1, o.maxIterations ?? 100,
    codebook, codes));
  const indices = new Uint8Array(Math.ceil((points.length * bits) / 8));
  callNative(() => nat.compressPackBits(codes, bits, indices));
  return {
    tensor: { kind: 'shared', shape, bits, codebook, count: points.length, indices, bitmap },
    iterations: r.iterations,
    inertia: r.inertia,
  };
}
