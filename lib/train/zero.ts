// SPDX-License-Identifier: Apache-2.0
// Sharded optimizer state (ZeRO stage 1, as PyTorch's ZeroRedundancyOptimizer): the parameters
// are viewed as one flat vector padded to a multiple of the world size n; rank r owns block r.
// A step reduce-scatters the gradients (each rank receives the reduced block it owns), steps
// its block with the fused optimizer, and all-gathers the updated blocks into every rank's
// parameters. Optimizer state per rank: 1/n of the unsharded optimizer's. Cost per step: a
// reduce-scatter and an all-gather, (n-1)/n × S bytes sent by each rank for each (ring), the
// same as one all-reduce; plus copies of S bytes in (gradients) and out (parameters).
import type { Communicator } from '../comm';
import { NodecclRangeError, NodecclTypeError } from '../errors';
import type { Optimizer, OptimizerStateDict } from '../optim';
import { checkOptions, describeValue } from '../options';
import { float32Data, type Float32Source } from './float32';

/** Builds the optimizer that steps this rank's block (given as one parameter). */
export type OptimizerFactory = (params: Float32Array[]) => Optimizer;

/** Options of {@link ZeroRedundancyOptimizer}. */
export interface ZeroOptions {
  /** Average the gradients over ranks (else sum them). Default true. */
  average?: boolean;
  /** Timeout of each collective in ms; default the communicator's. */
  timeoutMs?: number;
}

/** A rank's checkpoint: its block's optimizer state and where the block lies. */
export interface ZeroStateDict {
  format: 'nodeccl.zero/1';
  rank: number;
  worldSize: number;
  /** Elements of all parameters together, before padding. */
  total: number;
  /** Elements of each rank's block. */
  shardSize: number;
  optimizer: OptimizerStateDict;
}

/** The bytes of the state buffers an optimizer holds (measured from its state dict). */
export function optimizerStateBytes(opt: Optimizer): number {
  let bytes = 0;
  for (const entry of opt.stateDict().state) {
    for (const v of Object.values(entry)) {
      if (v instanceof Float32Array) bytes += v.byteLength;
    }
  }
  return bytes;
}

/**
 * An optimizer whose state is split across the ranks of `comm`; `step(grads)` takes each
 * rank's local (unreduced) gradients and leaves every rank with the same updated parameters,
 * equal to what the unsharded optimizer gives on the averaged gradients.
 * @example
 * const opt = new ZeroRedundancyOptimizer(comm, params, (p) => new Adam(p, { lr: 1e-3 }));
 * await opt.step(localGrads);
 */
export class ZeroRedundancyOptimizer {
  /** The communicator the state is sharded over. */
  readonly comm: Communicator;
  /** Elements of all parameters together. */
  readonly total: number;
  /** Elements in each rank's block: ceil(total / n); the last block is padded with zeros. */
  readonly shardSize: number;
  /** The optimizer over this rank's block. */
  readonly inner: Optimizer;

  private readonly params: Float32Array[];
  private readonly offsets: number[];
  private readonly flatGrads: Float32Array;   // n × shardSize; the padding stays 0
  private readonly flatParams: Float32Array;  // n × shardSize, filled by the all-gather
  private readonly shardGrad: Float32Array;
  private readonly shardParam: Float32Array;
  private readonly average: boolean;
  private readonly timeoutMs: number;

  constructor(comm: Communicator, params: readonly Float32Source[], make: OptimizerFactory,
              options: ZeroOptions = {}) {
    const who = 'new ZeroRedundancyOptimizer()';
    const opts = checkOptions(who, options, ['average', 'timeoutMs']);
    if (!Array.isArray(params) || params.length === 0) {
      throw new NodecclRangeError(`${who}: params must be a non-empty array of Float32Arrays ` +
        `or float32 Tensors, got ${describeValue(params)}`);
    }
    if (typeof make !== 'function') {
      throw new NodecclTypeError(`${who}: the third argument must build the optimizer, e.g. ` +
        `(p) => new Adam(p, { lr: 1e-3 }); got ${describeValue(make)}`);
    }
    this.comm = comm;
    this.params = params.map((p, i) => float32Data(p, `${who}: params[${i}]`));
    this.offsets = [];
    let total = 0;
    for (const p of this.params) { this.offsets.push(total); total += p.length; }
    this.total = total;

    // Pad to a multiple of n so that reduce-scatter and all-gather see equal blocks.
    this.shardSize = Math.ceil(total / comm.size);
    this.flatGrads = new Float32Array(this.shardSize * comm.size);
    this.flatParams = new Float32Array(this.shardSize * comm.size);
    this.shardGrad = new Float32Array(this.shardSize);
    this.shardParam = new Float32Array(this.shardSize);
    this.readShard();
    this.inner = make([this.shardParam]);
    this.average = opts.average ?? true;
    this.timeoutMs = opts.timeoutMs ?? comm.timeoutMs;
  }

  /** The learning rate of the inner optimizer (get/set, for schedules). */
  get lr(): number {
    return this.inner.lr;
  }

  set lr(value: number) {
    this.inner.lr = value;
  }

  /** Bytes of optimizer state on this rank (about 1/n of the unsharded optimizer's). */
  stateBytes(): number {
    return optimizerStateBytes(this.inner);
  }

  /**
   * One step: `grads[i]` is this rank's gradient of params[i] (not yet reduced). Resolves
   * when every rank's parameters hold the update. All ranks must call it together.
   * LIMITATION: every gradient must be given (no null to skip a parameter): the block
   * optimizer keeps one step count for a block that mixes parameters, so skipping one would
   * make its state diverge from the unsharded optimizer's.
   */
  async step(grads: readonly Float32Source[]): Promise<void> {
    const who = `rank ${this.comm.rank}: ZeroRedundancyOptimizer.step()`;
    this.packGrads(who, grads);
    const op = this.average ? 'avg' : 'sum';
    await this.comm.reduceScatter(this.flatGrads, this.shardGrad,
      { op, timeoutMs: this.timeoutMs });

    // Step this rank's block, reading the current parameters first (they may have been
    // changed since the last step, e.g. by loading a checkpoint).
    this.readShard();
    this.inner.step([this.shardGrad]);
    await this.comm.allGather(this.shardParam, this.flatParams, { timeoutMs: this.timeoutMs });
    this.params.forEach((p, i) => {
      p.set(this.flatParams.subarray(this.offsets[i], this.offsets[i] + p.length));
    });
  }

  /** This rank's checkpoint (its block's state only); reload it on the same layout. */
  stateDict(): ZeroStateDict {
    return { format: 'nodeccl.zero/1', rank: this.comm.rank, worldSize: this.comm.size,
      total: this.total, shardSize: this.shardSize, optimizer: this.inner.stateDict() };
  }

  /** Loads a checkpoint saved by stateDict() on the same rank of a job of the same layout. */
  loadStateDict(dict: ZeroStateDict): void {
    const who = `rank ${this.comm.rank}: ZeroRedundancyOptimizer.loadStateDict()`;
    if (typeof dict !== 'object' || dict === null || dict.format !== 'nodeccl.zero/1') {
      throw new NodecclTypeError(`${who}: dict must come from stateDict() ` +
        `(format 'nodeccl.zero/1'), got ${describeValue(dict)}`);
    }
    if (dict.rank !== this.comm.rank || dict.worldSize !== this.comm.size ||
        dict.total !== this.total) {
      throw new NodecclRangeError(`${who}: dict holds rank ${dict.rank} of ${dict.worldSize} ` +
        `over ${dict.total} elements, but this is rank ${this.comm.rank} of ${this.comm.size} ` +
        `over ${this.total}; load each rank's own dict into the same layout`);
    }
    this.inner.loadStateDict(dict.optimizer);
  }

  // Copies the gradients into the flat buffer; the padding is never written and stays 0.
  private packGrads(who: string, grads: readonly Float32Source[]): void {
    if (!Array.isArray(grads) || grads.length !== this.params.length) {
      throw new NodecclRangeError(`${who}: grads must be an array of ${this.params.length} ` +
        `gradients, one per parameter; got ${describeValue(grads)}`);
    }
    grads.forEach((g, i) => {
      const data = float32Data(g, `${who}: grads[${i}]`);
      if (data.length !== this.params[i].length) {
        throw new NodecclRangeError(`${who}: grads[${i}] has ${data.length} elements but ` +
          `params[${i}] has ${this.params[i].length}`);
      }
      this.flatGrads.set(data, this.offsets[i]);
    });
  }

  // shardParam = this rank's block of the concatenated parameters (zeros past the end).
  private readShard(): void {
    const lo = this.comm.rank * this.shardSize;
    const hi = lo + this.shardSize;
    this.params.forEach((p, i) => {
      const a = Math.max(lo, this.offsets[i]);
      const b = Math.min(hi, this.offsets[i] + p.length);
      if (a < b) this.shardParam.set(p.subarray(a - this.offsets[i], b - this.offsets[i]), a - lo);
    });
  }
}
