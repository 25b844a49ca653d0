// SPDX-License-Identifier: Apache-2.0
// 1-bit Adam (Tang et al., "1-bit Adam: Communication Efficient Large-Scale Training with Adam's
// Convergence Speed", 2021): full-precision distributed Adam for a warm-up, then the variance is
// frozen and only the momentum travels, compressed to one bit per element with error feedback.
//
// Warm-up (steps 1..warmupSteps): the gradients are all-reduced (avg, full float32, as one flat
// buffer) and stepped by nodeccl's fused Adam, so these steps equal plain distributed Adam bit
// for bit. At the end the Adam state (m, v) is taken over; v is frozen from then on.
// Compression stage (each later step t), per element, with v and its bias correction frozen:
//   g = grad + weightDecay p                   (L2 weight decay, as Adam's)
//   m = beta1 m + (1 - beta1) g                (local momentum, this rank's gradient only)
//   m = allReduce(m, avg, compressed)          (every rank now holds the same m)
//   p = p - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^W)) + eps)     (W = warmupSteps)
// The momentum all-reduce is `allReduce`'s compression (default sign1, one scale per 256
// elements) with this optimizer's own ErrorFeedback keyed by the momentum buffer: every rank
// keeps the residual of its encodings (the paper's worker error). With 3 or more ranks the
// ring form is chosen, where the chunk owner re-encodes the summed chunk with its own residual
// (the paper's server error); with 2 ranks the all-gather form sums the decoded sends exactly
// and only the worker error exists. Both leave m bitwise identical on every rank.
// Cost per compression-stage step: one compressed all-reduce of P elements (sign1: ~P/8 bytes
// plus scales, against 4P for float32), and two passes over 4 float32 arrays in JS.
// LIMITATION: float32 parameters only (the codecs encode float32).
import type { RingComm } from './compressed-ring';
import { NodecclRangeError, NodecclTypeError } from './errors';
import { Adam } from './optim';
import { checkOptions, describeValue } from './options';
import { type CodecLike, type CompressionAlgorithm, ErrorFeedback } from './quant';

/** The communicator surface 1-bit Adam needs (a Communicator has it). */
export interface OneBitAdamComm extends RingComm {
  allReduce(x: Float32Array, options?: { op?: 'max' | 'avg'; timeoutMs?: number;
                                         compression?: unknown }): Promise<unknown>;
}

/** Options of {@link OneBitAdam}. */
export interface OneBitAdamOptions {
  /** Learning rate. Default 1e-3. */
  lr?: number;
  /** Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** L2 weight decay (added to the gradient, as Adam's). Default 0. */
  weightDecay?: number;
  /** Full-precision Adam steps before the variance freezes. Default 100. */
  warmupSteps?: number;
  /** The momentum's codec. Default { kind: 'sign1', blockSize: 256 }. */
  compression?: CodecLike;
  /** The compressed all-reduce's form (see allReduce's compression). Default 'auto'. */
  algorithm?: CompressionAlgorithm;
  /** Deadline of each all-reduce, in milliseconds (default: the communicator's). */
  timeoutMs?: number;
}

/**
 * 1-bit Adam over a communicator: `await opt.step(grads)` with this rank's local gradients
 * (one Float32Array per parameter); every rank must call it with parameters of the same sizes.
 * Parameters stay bitwise identical on every rank.
 */
export class OneBitAdam {
  /** Steps taken so far. */
  stepCount = 0;
  private readonly comm: OneBitAdamComm;
  private readonly params: Float32Array[];
  private readonly offsets: number[];
  private readonly opts: Required<Omit<OneBitAdamOptions, 'timeoutMs'>>;
  private readonly timeout: { timeoutMs?: number };
  private readonly flat: Float32Array;       // warm-up: the gradients; then: the momentum m
  private readonly adam: Adam;
  private v: Float32Array | null = null;      // frozen variance, after warm-up
  private readonly feedback: ErrorFeedback;

  constructor(comm: OneBitAdamComm, params: Float32Array[], options: OneBitAdamOptions = {}) {
    const who = 'new OneBitAdam()';
    checkOptions(who, options, ['lr', 'betas', 'eps', 'weightDecay', 'warmupSteps',
      'compression', 'algorithm', 'timeoutMs']);
    if (!Array.isArray(params) || params.length === 0) {
      throw new NodecclTypeError(`${who}: params must be a non-empty array of Float32Array, ` +
        `got ${describeValue(params)}`);
    }
    params.forEach((p, i) => {
      if (!(p instanceof Float32Array)) {
        throw new NodecclTypeError(`${who}: params[${i}] must be a Float32Array, got ` +
          `${describeValue(p)}; LIMITATION: 1-bit Adam is float32 only (the codecs encode ` +
          'float32)');
      }
    });
    const warmupSteps = options.warmupSteps ?? 100;
    if (!Number.isSafeInteger(warmupSteps) || warmupSteps < 1) {
      throw new NodecclRangeError(`${who}: warmupSteps must be a whole number >= 1, got ` +
        `${describeValue(warmupSteps)}; the variance is frozen from the warm-up's Adam state`);
    }
    this.opts = { lr: options.lr ?? 1e-3, betas: options.betas ?? [0.9, 0.999],
      eps: options.eps ?? 1e-8, weightDecay: options.weightDecay ?? 0, warmupSteps,
      compression: options.compression ?? { kind: 'sign1', blockSize: 256 },
      algorithm: options.algorithm ?? 'auto' };
    this.comm = comm;
    this.params = params;
    this.timeout = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
    this.offsets = [0];
    for (const p of params) this.offsets.push(this.offsets[this.offsets.length - 1] + p.length);
    this.flat = new Float32Array(this.offsets[params.length]);
    // Adam checks lr, betas, eps and weightDecay.
    this.adam = new Adam(params, { lr: this.opts.lr, betas: this.opts.betas, eps: this.opts.eps,
      weightDecay: this.opts.weightDecay });
    this.feedback = new ErrorFeedback(this.opts.compression);
  }

  /** True once the warm-up is over (variance frozen, momentum compressed). */
  get compressing(): boolean {
    return this.v !== null;
  }

  /** The learning rate; may be changed between steps. */
  get lr(): number {
    return this.opts.lr;
  }

  set lr(value: number) {
    this.adam.lr = value;  // checks it
    this.opts.lr = value;
  }

  /** One step from this rank's local gradients (same order and sizes as the parameters). */
  async step(grads: Float32Array[]): Promise<void> {
    const who = 'OneBitAdam.step()';
    if (!Array.isArray(grads) || grads.length !== this.params.length) {
      throw new NodecclRangeError(`${who}: grads must be an array of ${this.params.length} ` +
        `Float32Array (one per parameter), got ${describeValue(grads)}`);
    }
    grads.forEach((g, i) => {
      if (!(g instanceof Float32Array) || g.length !== this.params[i].length) {
        throw new NodecclRangeError(`${who}: grads[${i}] must be a Float32Array of ` +
          `${this.params[i].length} elements, got ${describeValue(g)}`);
      }
    });
    this.stepCount++;
    if (this.v === null) await this.warmupStep(grads);
    else await this.compressedStep(grads);
  }

  // Plain distributed Adam; at the last warm-up step, take over m and freeze v.
  private async warmupStep(grads: Float32Array[]): Promise<void> {
    grads.forEach((g, i) => this.flat.set(g, this.offsets[i]));
    await this.comm.allReduce(this.flat, { op: 'avg', ...this.timeout });
    this.adam.step(this.params.map((_, i) => this.view(this.flat, i)));
    if (this.stepCount < this.opts.warmupSteps) return;
    const v = new Float32Array(this.flat.length);
    this.adam.stateDict().state.forEach((s, i) => {
      this.flat.set(s.expAvg!, this.offsets[i]);
      v.set(s.expAvgSq!, this.offsets[i]);
    });
    this.v = v;
  }

  // Local momentum, compressed average, update with the frozen variance.
  private async compressedStep(grads: Float32Array[]): Promise<void> {
    const { betas: [b1, b2], weightDecay: wd, eps, lr, warmupSteps } = this.opts;
    const m = this.flat;
    for (let i = 0; i < grads.length; i++) {
      const g = grads[i];
      const p = this.params[i];
      const mi = this.view(m, i);
      for (let j = 0; j < g.length; j++) mi[j] = b1 * mi[j] + (1 - b1) * (g[j] + wd * p[j]);
    }
    await this.comm.allReduce(m, { op: 'avg', ...this.timeout, compression: {
      codec: this.feedback.codec, errorFeedback: this.feedback,
      algorithm: this.opts.algorithm } });
    const stepSize = lr / (1 - b1 ** this.stepCount);
    const vScale = 1 / Math.sqrt(1 - b2 ** warmupSteps);
    const v = this.v!;
    for (let i = 0; i < this.params.length; i++) {
      const p = this.params[i];
      const mi = this.view(m, i);
      const vi = this.view(v, i);
      for (let j = 0; j < p.length; j++) {
        p[j] -= (stepSize * mi[j]) / (Math.sqrt(vi[j]) * vScale + eps);
      }
    }
  }

  private view(a: Float32Array, i: number): Float32Array {
    return a.subarray(this.offsets[i], this.offsets[i + 1]);
  }
}
