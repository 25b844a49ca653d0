// SPDX-License-Identifier: Apache-2.0
// The compressed tensor records that the compression functions return and the model file
// stores, and their expansion back to dense float32.
import { NodecclRangeError, NodecclTypeError } from '../errors';
import { describeValue } from '../options';
import { callNative, compressNative, elementCount } from './native';

/** Plain float32 values (biases, or anything left uncompressed). */
export interface DenseTensor {
  kind: 'dense';
  shape: number[];
  values: Float32Array;
}

/** Bitmap sparse form: bit i (LSB first) set when element i is nonzero; nonzeros in order. */
export interface SparseTensor {
  kind: 'sparse';
  shape: number[];
  /** ceil(n / 8) bytes. */
  bitmap: Uint8Array;
  /** The nonzero values, in index order. */
  values: Float32Array;
}

/**
 * Weight sharing: every stored element is one of 2^bits codebook values, named by a packed
 * `bits`-bit index. With a bitmap only the elements marked in it have indices (the rest are 0),
 * which combines pruning and sharing as Deep Compression does.
 */
export interface SharedTensor {
  kind: 'shared';
  shape: number[];
  /** Bits per index, 2..8. */
  bits: number;
  /** 2^bits shared values, ascending. */
  codebook: Float32Array;
  /** Number of indices packed in `indices` (n, or the bitmap's count). */
  count: number;
  /** ceil(count * bits / 8) bytes, LSB first. */
  indices: Uint8Array;
  /** Present when only nonzeros are shared; then zeros cost one bit each. */
  bitmap: Uint8Array | null;
}

/**
 * Symmetric int8 / int4 quantization: element i is q[i] * scales[group(i)]. The tensor is seen
 * as [shape[0], rest] (a vector as [1, n]); groups are rows (axis 0) or columns (axis 1) when
 * blockSize is 0, otherwise blocks of blockSize consecutive elements.
 */
export interface QuantizedTensor {
  kind: 'quantized';
  shape: number[];
  bits: 8 | 4;
  axis: 0 | 1;
  /** 0: one scale per channel along `axis`; otherwise elements per block. */
  blockSize: number;
  scales: Float32Array;
  /** int8: one byte per element; int4: two's-complement nibbles, even element low. */
  q: Uint8Array;
}

/** Any record the model file can hold. */
export type CompressedTensor = DenseTensor | SparseTensor | SharedTensor | QuantizedTensor;

/** rows and cols of the 2-D view used by quantization: [shape[0], product of the rest]. */
export function matrixView(shape: readonly number[]): [number, number] {
  if (shape.length < 2) return [1, elementCount(shape)];
  return [shape[0], elementCount(shape.slice(1))];
}

/** Expands a bitmap and packed codes into one float per marked element via the codebook. */
function expandShared(t: SharedTensor, n: number): Float32Array {
  if (!Number.isInteger(t.bits) || t.bits < 2 || t.bits > 8 ||
      t.codebook?.length !== 2 ** t.bits) {
    throw new NodecclRangeError(`decompress(): a shared record of ${describeValue(t.bits)} ` +
      `bits needs 2^bits codebook values, got ${describeValue(t.codebook?.length)}`);
  }
  if (!t.bitmap && t.count !== n) {
    throw new NodecclRangeError(`decompress(): a dense shared record of ${n} elements has ` +
      `${describeValue(t.count)} indices`);
  }
  const nat = compressNative();
  const codes = new Uint8Array(t.count);
  callNative(() => nat.compressUnpackBits(t.indices, t.bits, codes));
  const values = new Float32Array(t.count);
  for (let i = 0; i < t.count; i++) values[i] = t.codebook[codes[i]];
  if (!t.bitmap) return values;
  const out = new Float32Array(n);
  callNative(() => nat.compressSparseDecode(t.bitmap as Uint8Array, values, out));
  return out;
}

/**
 * The dense float32 values of any compressed record (a new array; a dense record's values are
 * returned as they are).
 *
 * @throws NodecclRangeError when the record's parts do not agree (a corrupted record).
 */
export function decompress(t: CompressedTensor): Float32Array {
  const n = elementCount(t.shape);
  const nat = compressNative();
  switch (t?.kind) {
    case 'dense':
      return t.values;
    case 'sparse': {
      const out = new Float32Array(n);
      callNative(() => nat.compressSparseDecode(t.bitmap, t.values, out));
      return out;
    }
    case 'shared':
      return expandShared(t, n);
    case 'quantized': {
      const out = new Float32Array(n);
      const [rows, cols] = matrixView(t.shape);
      callNative(() => nat.compressDequantize(t.q, t.scales, rows, cols, t.bits, t.axis,
        t.blockSize, out));
      return out;
    }
    default:
      throw new NodecclTypeError(
        `decompress(): unknown record kind ${describeValue((t as { kind?: unknown })?.kind)}; ` +
        "expected 'dense', 'sparse', 'shared' or 'quantized'");
  }
}
