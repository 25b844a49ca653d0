// SPDX-License-Identifier: Apache-2.0
// Tensor-parallel linear layers (Megatron-LM style): y = x·W + b with W [in x out] split
// across the ranks of a communicator, by columns or by rows, forward and backward.
//
// Cost per call, for a batch of m rows over n ranks: ColumnParallelLinear forward does
// m·in·out/n multiply-adds, plus (gatherOutput) an all-gather of m·out floats; its backward
// does 2·m·in·out/n and (inputGrad) an all-reduce of m·in floats. RowParallelLinear forward
// does m·in·out/n and an all-reduce of m·out floats; its backward 2·m·in·out/n and no
// communication unless the input was replicated (then an all-gather of m·in floats). A column
// layer without gatherOutput feeding a row layer (the usual MLP pairing) needs one all-reduce
// each way.
import type { Communicator } from '../comm';
import { NodecclRangeError, NodecclTypeError } from '../errors';
import { matmul, matmulTA, matmulTB, sliceColumns } from './matmul';

/** The block [begin, end) of `total` features owned by `rank` of `size` (even split). */
export function featureBlock(total: number, rank: number, size: number, what: string):
    { begin: number; end: number } {
  if (!Number.isInteger(total) || total <= 0 || total % size !== 0) {
    throw new NodecclRangeError(`rank ${rank}: ${what} ${total} is not a positive multiple of ` +
      `the ${size} ranks; choose a size divisible by the tensor-parallel group size`);
  }
  const n = total / size;
  return { begin: rank * n, end: (rank + 1) * n };
}

function checkArray(layer: string, what: string, a: unknown, length: number, rank: number):
    Float32Array {
  if (!(a instanceof Float32Array)) {
    throw new NodecclTypeError(`rank ${rank}: ${layer} ${what} must be a Float32Array`);
  }
  if (a.length !== length) {
    throw new NodecclRangeError(`rank ${rank}: ${layer} ${what} has ${a.length} elements but ` +
      `needs ${length}; check the batch rows and the layer's feature counts`);
  }
  return a;
}

function rowsOf(layer: string, x: Float32Array, width: number, rank: number): number {
  if (!(x instanceof Float32Array) || width <= 0 || x.length % width !== 0) {
    throw new NodecclRangeError(`rank ${rank}: ${layer} input must be a Float32Array of ` +
      `rows × ${width} elements, got ${x instanceof Float32Array ? x.length : typeof x}`);
  }
  return x.length / width;
}

export interface ColumnParallelOptions {
  /** All-gather the output blocks into the full [rows x out] output (default true). */
  gatherOutput?: boolean;
  /** Compute and all-reduce the input gradient in backward (default true). */
  inputGrad?: boolean;
}

/**
 * W split by columns: this rank holds W[:, begin:end] ([in x out/n]) and b[begin:end], and
 * computes those output features for the whole batch. Gradients of its block land in gradW
 * and gradB after backward().
 */
export class ColumnParallelLinear {
  readonly begin: number;
  readonly end: number;
  readonly gradW: Float32Array;
  readonly gradB: Float32Array;
  private x: Float32Array | null = null;
  private readonly gather: boolean;
  private readonly inputGrad: boolean;

  constructor(readonly comm: Communicator, readonly inFeatures: number,
              readonly outFeatures: number, readonly weight: Float32Array,
              readonly bias: Float32Array, options: ColumnParallelOptions = {}) {
    ({ begin: this.begin, end: this.end } =
      featureBlock(outFeatures, comm.rank, comm.size, 'ColumnParallelLinear outFeatures'));
    const local = this.end - this.begin;
    checkArray('ColumnParallelLinear', 'weight', weight, inFeatures * local, comm.rank);
    checkArray('ColumnParallelLinear', 'bias', bias, local, comm.rank);
    this.gradW = new Float32Array(weight.length);
    this.gradB = new Float32Array(bias.length);
    this.gather = options.gatherOutput ?? true;
    this.inputGrad = options.inputGrad ?? true;
  }

  /** This rank's shard of a full W [in x out] and b [out]. */
  static shard(comm: Communicator, inFeatures: number, outFeatures: number, w: Float32Array,
               b: Float32Array): { weight: Float32Array; bias: Float32Array } {
    const { begin, end } = featureBlock(outFeatures, comm.rank, comm.size, 'outFeatures');
    return { weight: sliceColumns(w, inFeatures, outFeatures, begin, end),
      bias: b.slice(begin, end) };
  }

  /** x [rows x in] (the same on every rank) → y [rows x out] (or this rank's [rows x out/n]). */
  async forward(x: Float32Array): Promise<Float32Array> {
    const rows = rowsOf('ColumnParallelLinear', x, this.inFeatures, this.comm.rank);
    const local = this.end - this.begin;
    this.x = x;
    const y = matmul(x, this.weight, rows, this.inFeatures, local);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < local; j++) y[i * local + j] += this.bias[j];
    }
    if (!this.gather) return y;
    // The gathered blocks arrive rank-major ([n][rows x out/n]); interleave them into rows.
    const blocks = await this.comm.allGather(y);
    const out = new Float32Array(rows * this.outFeatures);
    for (let r = 0; r < this.comm.size; r++) {
      for (let i = 0; i < rows; i++) {
        out.set(blocks.subarray((r * rows + i) * local, (r * rows + i + 1) * local),
          i * this.outFeatures + r * local);
      }
    }
    return out;
  }

  /**
   * gradY: [rows x out] (gathered output; every rank passes the same) or [rows x out/n].
   * Fills gradW, gradB; resolves to gradX [rows x in] summed over ranks (or null without
   * inputGrad).
   */
  async backward(gradY: Float32Array): Promise<Float32Array | null> {
    const x = this.x;
    if (!x) throw new NodecclRangeError(`rank ${this.comm.rank}: ColumnParallelLinear ` +
      'backward called before forward; call forward on this batch first');
    const rows = x.length / this.inFeatures;
    const local = this.end - this.begin;
    const g = gradY.length === rows * local ? gradY
      : sliceColumns(checkArray('ColumnParallelLinear', 'gradY', gradY,
        rows * this.outFeatures, this.comm.rank), rows, this.outFeatures, this.begin, this.end);
    matmulTA(x, g, rows, this.inFeatures, local, this.gradW);
    this.gradB.fill(0);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < local; j++) this.gradB[j] += g[i * local + j];
    }
    if (!this.inputGrad) return null;
    const gx = matmulTB(g, this.weight, rows, local, this.inFeatures);
    return this.comm.allReduce(gx);
  }
}

export interface RowParallelOptions {
  /** The input is already this rank's [rows x in/n] block (default true); else the full x. */
  inputIsParallel?: boolean;
}

/**
 * W split by rows: this rank holds W[begin:end, :] ([in/n x out]) and the whole bias b [out]
 * (replicated); partial products are all-reduced, then b is added once.
 */
export class RowParallelLinear {
  readonly begin: number;
  readonly end: number;
  readonly gradW: Float32Array;
  /** The bias gradient: the same on every rank (from the same gradY). */
  readonly gradB: Float32Array;
  private x: Float32Array | null = null;
  private readonly parallelInput: boolean;

  constructor(readonly comm: Communicator, readonly inFeatures: number,
              readonly outFeatures: number, readonly weight: Float32Array,
              readonly bias: Float32Array, options: RowParallelOptions = {}) {
    ({ begin: this.begin, end: this.end } =
      featureBlock(inFeatures, comm.rank, comm.size, 'RowParallelLinear inFeatures'));
    checkArray('RowParallelLinear', 'weight', weight, (this.end - this.begin) * outFeatures,
      comm.rank);
    checkArray('RowParallelLinear', 'bias', bias, outFeatures, comm.rank);
    this.gradW = new Float32Array(weight.length);
    this.gradB = new Float32Array(outFeatures);
    this.parallelInput = options.inputIsParallel ?? true;
  }

  /** This rank's shard of a full W [in x out] (rows begin..end) and the whole b. */
  static shard(comm: Communicator, inFeatures: number, outFeatures: number, w: Float32Array,
               b: Float32Array): { weight: Float32Array; bias: Float32Array } {
    const { begin, end } = featureBlock(inFeatures, comm.rank, comm.size, 'inFeatures');
    return { weight: w.slice(begin * outFeatures, end * outFeatures), bias: b.slice() };
  }

  /** x: [rows x in/n] (or [rows x in] without inputIsParallel) → y [rows x out] on all. */
  async forward(x: Float32Array): Promise<Float32Array> {
    const local = this.end - this.begin;
    const xl = this.parallelInput ? x
      : sliceColumns(x, rowsOf('RowParallelLinear', x, this.inFeatures, this.comm.rank),
        this.inFeatures, this.begin, this.end);
    const rows = rowsOf('RowParallelLinear', xl, local, this.comm.rank);
    this.x = xl;
    const y = await this.comm.allReduce(matmul(xl, this.weight, rows, local, this.outFeatures));
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < this.outFeatures; j++) y[i * this.outFeatures + j] += this.bias[j];
    }
    return y;
  }

  /**
   * gradY [rows x out] (the same on every rank). Fills gradW, gradB; resolves to the gradient
   * of this rank's input block [rows x in/n] (or the full [rows x in], all-gathered, without
   * inputIsParallel).
   */
  async backward(gradY: Float32Array): Promise<Float32Array> {
    const x = this.x;
    if (!x) throw new NodecclRangeError(`rank ${this.comm.rank}: RowParallelLinear ` +
      'backward called before forward; call forward on this batch first');
    const local = this.end - this.begin;
    const rows = x.length / local;
    checkArray('RowParallelLinear', 'gradY', gradY, rows * this.outFeatures, this.comm.rank);
    matmulTA(x, gradY, rows, local, this.outFeatures, this.gradW);
    this.gradB.fill(0);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < this.outFeatures; j++) this.gradB[j] += gradY[i * this.outFeatures + j];
    }
    const gx = matmulTB(gradY, this.weight, rows, this.outFeatures, local);
    if (this.parallelInput) return gx;
    const blocks = await this.comm.allGather(gx);
    const out = new Float32Array(rows * this.inFeatures);
    for (let r = 0; r < this.comm.size; r++) {
      for (let i = 0; i < rows; i++) {
        out.set(blocks.subarray((r * rows + i) * local, (r * rows + i + 1) * local),
          i * this.inFeatures + r * local);
      }
    }
    return out;
  }
}
