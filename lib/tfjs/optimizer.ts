// SPDX-License-Identifier: Apache-2.0
// DistributedOptimizer: a tfjs Optimizer that averages gradients across ranks before applying
// them with a wrapped optimizer (any tfjs one, or a fused nodeccl one), as Horovod's
// DistributedOptimizer does. tfjs applies gradients synchronously but collectives are
// asynchronous, so applyGradients() only starts the bucketed all-reduce; synchronize()
// (called by DistributedCallback after each batch of model.fit) waits for it and applies.
// Cost per step: that of DataParallel (one all-reduce per bucket), plus one copy of each
// gradient out of tfjs and, for a fused optimizer, one read and write of each weight.
import * as tf from '@tensorflow/tfjs';
import type { Communicator } from '../comm';
import { NodecclError, NodecclTypeError } from '../errors';
import type { Optimizer as FusedOptimizer } from '../optim';
import { describeValue } from '../options';
import { DataParallel, type DataParallelOptions } from '../train/data-parallel';

/** A gradient or weight with the name of its variable (tfjs-core's NamedTensor). */
export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

/** Builds a fused nodeccl optimizer over the weights, given as Float32Arrays. */
export type FusedFactory = (params: Float32Array[]) => FusedOptimizer;

/** Options of {@link DistributedOptimizer}: those of the bucketed reduction. */
export type DistributedOptimizerOptions = DataParallelOptions;

// Marks DistributedOptimizer instances. `instanceof` cannot tell: tf.Optimizer defines
// Symbol.hasInstance as a duck-type test that every subclass inherits, so any tfjs optimizer
// would pass `instanceof DistributedOptimizer`.
const BRAND = Symbol.for('nodeccl.DistributedOptimizer');

/** Whether `x` is a {@link DistributedOptimizer} (use this, not `instanceof`). */
export function isDistributedOptimizer(x: unknown): x is DistributedOptimizer {
  return typeof x === 'object' && x !== null && (x as Record<symbol, unknown>)[BRAND] === true;
}

// The state built on the first applyGradients(), when the variables are first seen.
interface Layout {
  names: string[];
  shapes: number[][];
  dp: DataParallel;
  fused: FusedOptimizer | null;
  params: Float32Array[];   // the fused optimizer's copy of the weights (empty for tfjs)
}

/**
 * Wraps `inner` so that every rank applies the mean of all ranks' gradients.
 * @example
 * const opt = new DistributedOptimizer(comm, tf.train.adam(1e-3));
 * model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
 * await model.fit(x, y, { callbacks: [new DistributedCallback(comm)] });
 */
export class DistributedOptimizer extends tf.Optimizer {
  /** The communicator gradients are averaged over. */
  readonly comm: Communicator;
  private readonly inner: tf.Optimizer | null;
  private readonly factory: FusedFactory | null;
  private readonly options: DistributedOptimizerOptions;
  private layout: Layout | null = null;
  private pending: Promise<unknown> | null = null;

  /**
   * @param inner - a tfjs optimizer (tf.train.adam(...), ...), or a function building a fused
   *   nodeccl optimizer over Float32Arrays: `(p) => new Adam(p, { lr: 1e-3 })`.
   */
  constructor(comm: Communicator, inner: tf.Optimizer | FusedFactory,
              options: DistributedOptimizerOptions = {}) {
    super();
    const isTfjs = typeof inner === 'object' && inner !== null &&
      typeof (inner as tf.Optimizer).applyGradients === 'function';
    if (!isTfjs && typeof inner !== 'function') {
      throw new NodecclTypeError('new DistributedOptimizer(): inner must be a tfjs optimizer ' +
        'or a function (params) => nodeccl optimizer, got ' + describeValue(inner));
    }
    Object.defineProperty(this, BRAND, { value: true });
    this.comm = comm;
    this.inner = isTfjs ? inner as tf.Optimizer : null;
    this.factory = isTfjs ? null : inner as FusedFactory;
    this.options = options;
  }

  /** The tfjs serialization name. */
  static get className(): string {
    return 'DistributedOptimizer';
  }

  /**
   * Copies this rank's gradients out of tfjs and starts averaging them; they are applied by
   * the next synchronize(). Called by tfjs's minimize() (and so by model.fit).
   */
  applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const who = `rank ${this.comm.rank}: DistributedOptimizer.applyGradients()`;
    if (this.pending !== null) {
      throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `${who}: the previous gradients ` +
        'were not applied yet; await opt.synchronize() after each minimize() (model.fit does ' +
        'it when DistributedCallback is in its callbacks)');
    }
    const list = Array.isArray(variableGradients) ? variableGradients :
      Object.keys(variableGradients).map((name) => ({ name, tensor: variableGradients[name] }));
    const layout = this.layoutFor(who, list);

    // Last variable first: the order a backward pass produces them, bucket 0 first.
    for (let i = list.length - 1; i >= 0; i--) {
      const g = list[i].tensor;
      if (g) layout.dp.gradReady(i, g.dataSync() as Float32Array);
    }
    const sync = layout.dp.synchronize();
    sync.catch(() => undefined);   // reported by synchronize(), not as an unhandled rejection
    this.pending = sync;
  }

  /** Waits for the averaged gradients and applies them; a no-op when none are pending. */
  async synchronize(): Promise<void> {
    if (this.pending === null) return;
    const sync = this.pending;
    this.pending = null;
    await sync;
    const layout = this.layout!;
    if (layout.fused) {
      this.applyFused(layout);
    } else {
      tf.tidy(() => {
        this.inner!.applyGradients(layout.names.map((name, i) => ({
          name, tensor: tf.tensor(layout.dp.grads[i].slice(), layout.shapes[i], 'float32') })));
      });
    }
    this.incrementIterations();
  }

  /** applyGradients() and synchronize() in one, for custom training loops. */
  async applyGradientsAsync(grads: tf.NamedTensorMap | NamedTensor[]): Promise<void> {
    this.applyGradients(grads);
    await this.synchronize();
  }

  async getWeights(): Promise<NamedTensor[]> {
    if (this.inner === null) return super.getWeights();
    return this.inner.getWeights();
  }

  async setWeights(weightValues: NamedTensor[]): Promise<void> {
    if (this.inner === null) return super.setWeights(weightValues);
    return this.inner.setWeights(weightValues);
  }

  getConfig(): tf.serialization.ConfigDict {
    return this.inner === null ? {} : this.inner.getConfig();
  }

  dispose(): void {
    this.inner?.dispose();
    super.dispose();
  }

  // The layout of the first call; later calls must pass the same variables in the same order.
  private layoutFor(who: string, list: NamedTensor[]): Layout {
    const names = list.map((g) => g.name);
    if (this.layout !== null) {
      if (names.join('\n') !== this.layout.names.join('\n')) {
        throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `${who}: got gradients of ` +
          `${names.length} variables (${names.slice(0, 3).join(', ')}, ...) but the first call ` +
          `had ${this.layout.names.length}; a DistributedOptimizer serves one variable list`);
      }
      return this.layout;
    }
    const variables = tf.engine().registeredVariables;
    const shapes = names.map((name, i) => {
      const v = variables[name];
      if (v === undefined) {
        throw new NodecclTypeError(`${who}: gradient ${i} names variable '${name}', which ` +
          'tfjs does not know');
      }
      return [...v.shape];
    });
    const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
    const dp = new DataParallel(this.comm, sizes, this.options);
    const params = this.factory ? sizes.map((n) => new Float32Array(n)) : [];
    names.forEach((name, i) => { if (this.factory) params[i].set(variables[name].dataSync()); });
    const fused = this.factory ? this.factory(params) : null;
    this.layout = { names, shapes, dp, fused, params };
    return this.layout;
  }

  // Reads the weights (they may have changed since the last step, e.g. by a broadcast), steps
  // the fused optimizer on them, and writes them back.
  private applyFused(layout: Layout): void {
    const variables = tf.engine().registeredVariables;
    layout.names.forEach((name, i) => layout.params[i].set(variables[name].dataSync()));
    layout.fused!.step(layout.dp.grads);
    layout.names.forEach((name, i) => {
      const t = tf.tensor(layout.params[i].slice(), layout.shapes[i], 'float32');
      variables[name].assign(t);
      t.dispose();
    });
  }
}
