// SPDX-License-Identifier: Apache-2.0
// Local SGD (periodic model averaging): each rank steps its own copy of the model on its own
// data with no communication, and every `period` steps the ranks average their parameters.
// Cost: one all-reduce of all parameters (2(n-1)/n × S bytes per rank, ring) every `period`
// steps instead of one of the gradients every step; two copies of S bytes per averaging when
// there are several parameter arrays (they are packed into one buffer for one collective).
import type { Communicator } from '../comm';
import { NodecclRangeError } from '../errors';
import { checkOptions, describeValue } from '../options';
import { float32Data, type Float32Source } from './float32';

/** Options of {@link LocalSGD}. */
export interface LocalSGDOptions {
  /** Average the parameters every this many local steps (>= 1; 1 is synchronous). Default 8. */
  period?: number;
  /**
   * Average after every step for the first `warmupSteps` steps, then every `period` (as
   * post-local SGD: the early, fast-moving phase is kept synchronous). Default 0.
   */
  warmupSteps?: number;
  /** Timeout of each averaging collective in ms; default the communicator's. */
  timeoutMs?: number;
}

/**
 * Periodic parameter averaging across the ranks of `comm`.
 * @example
 * const local = new LocalSGD(comm, params, { period: 8 });
 * for (...) { opt.step(localGradients()); await local.step(); }
 */
export class LocalSGD {
  /** The communicator the parameters are averaged over. */
  readonly comm: Communicator;
  /** Local steps between two averagings. */
  readonly period: number;
  /** Steps at the start that average every time. */
  readonly warmupSteps: number;
  /** Local steps taken so far (calls to step()). */
  steps = 0;
  /** Averagings done so far. */
  averagings = 0;
  /** Local steps since the last averaging: the ranks' weights differ when this is not 0. */
  stepsSinceAverage = 0;

  private readonly params: Float32Array[];
  private readonly flat: Float32Array | null;
  private readonly timeoutMs: number;

  constructor(comm: Communicator, params: readonly Float32Source[],
              options: LocalSGDOptions = {}) {
    const who = 'new LocalSGD()';
    const opts = checkOptions(who, options, ['period', 'warmupSteps', 'timeoutMs']);
    this.period = wholeNumber(who, 'period', opts.period ?? 8, 1);
    this.warmupSteps = wholeNumber(who, 'warmupSteps', opts.warmupSteps ?? 0, 0);
    if (!Array.isArray(params) || params.length === 0) {
      throw new NodecclRangeError(`${who}: params must be a non-empty array of Float32Arrays ` +
        `or float32 Tensors, got ${describeValue(params)}`);
    }
    this.params = params.map((p, i) => float32Data(p, `${who}: params[${i}]`));
    const total = this.params.reduce((s, p) => s + p.length, 0);
    this.flat = this.params.length > 1 ? new Float32Array(total) : null;
    this.comm = comm;
    this.timeoutMs = opts.timeoutMs ?? comm.timeoutMs;
  }

  /**
   * Counts one local step (call it after the optimizer's) and averages the parameters when
   * the step count says so. Resolves to true when it averaged. Every rank must call it once
   * per step, so that all ranks average at the same steps.
   */
  async step(): Promise<boolean> {
    this.steps++;
    this.stepsSinceAverage++;
    const due = this.steps <= this.warmupSteps ||
      (this.steps - this.warmupSteps) % this.period === 0;
    if (due) await this.average();
    return due;
  }

  /** Averages the parameters across ranks now (all ranks must call it together). */
  async average(): Promise<void> {
    if (this.flat === null) {
      await this.comm.allReduce(this.params[0], { op: 'avg', timeoutMs: this.timeoutMs });
    } else {
      let off = 0;
      for (const p of this.params) { this.flat.set(p, off); off += p.length; }
      await this.comm.allReduce(this.flat, { op: 'avg', timeoutMs: this.timeoutMs });
      off = 0;
      for (const p of this.params) {
        p.set(this.flat.subarray(off, off + p.length));
        off += p.length;
      }
    }
    this.averagings++;
    this.stepsSinceAverage = 0;
  }
}

function wholeNumber(who: string, what: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new NodecclRangeError(`${who}: ${what} must be a whole number >= ${min}, got ` +
      `${describeValue(v)}`);
  }
  return v;
}
