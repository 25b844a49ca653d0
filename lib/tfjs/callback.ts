// SPDX-License-Identifier: Apache-2.0
// DistributedCallback: the model.fit callback that makes a tfjs-layers script data parallel,
// as Horovod's Keras callbacks do: it broadcasts the root's weights when training begins,
// applies the averaged gradients after each batch, and averages the epoch's metrics.
import * as tf from '@tensorflow/tfjs';
import type { Communicator } from '../comm';
import { NodecclError } from '../errors';
import { checkOptions } from '../options';
import { type DistributedOptimizer, isDistributedOptimizer } from './optimizer';
import { broadcastVariables } from './variables';

/** Options of {@link DistributedCallback}. */
export interface DistributedCallbackOptions {
  /** The rank whose weights every rank starts from. Default 0. */
  root?: number;
  /** Broadcast the root's weights at the start of training. Default true. */
  broadcast?: boolean;
  /** Replace each epoch's metrics (loss, acc, ...) by their mean over ranks. Default true. */
  averageMetrics?: boolean;
}

/**
 * Put it first in model.fit's callbacks; the model must be compiled with a
 * {@link DistributedOptimizer}. Every rank must run the same number of batches per epoch
 * (give each rank an equal share of the data).
 */
export class DistributedCallback extends tf.Callback {
  /** The communicator of the job. */
  readonly comm: Communicator;
  private readonly root: number;
  private readonly broadcast: boolean;
  private readonly averageMetrics: boolean;

  constructor(comm: Communicator, options: DistributedCallbackOptions = {}) {
    super();
    const opts = checkOptions('new DistributedCallback()', options,
      ['root', 'broadcast', 'averageMetrics']);
    this.comm = comm;
    this.root = opts.root ?? 0;
    this.broadcast = opts.broadcast ?? true;
    this.averageMetrics = opts.averageMetrics ?? true;
  }

  /**
   * Checks the setup and broadcasts the root's weights.
   * LIMITATION: model.fit(x, y) with validationData or validationSplit is refused. tfjs runs
   * the validation of an epoch inside its last batch, before any callback; the averaged
   * gradients of that batch are applied after it (collectives are asynchronous, tfjs's
   * optimizer step is not), so the validation would score weights one step old. fitDataset()
   * validates after the last batch's callbacks and is accepted; or call model.evaluate().
   */
  async onTrainBegin(): Promise<void> {
    const who = `rank ${this.comm.rank}: DistributedCallback`;
    this.optimizer(who);
    const params = this.params as { doValidation?: boolean; samples?: number | null };
    if (params.doValidation && params.samples != null) {
      throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `${who}: model.fit() with ` +
        'validationData/validationSplit would validate weights one step old (tfjs validates ' +
        'inside the last batch, before the averaged gradients are applied); drop the ' +
        'validation option and call model.evaluate() after fit, or use fitDataset()');
    }
    if (this.broadcast) await broadcastVariables(this.comm, this.model, this.root);
  }

  /** Applies the batch's averaged gradients. */
  async onBatchEnd(): Promise<void> {
    await this.optimizer(`rank ${this.comm.rank}: DistributedCallback`).synchronize();
  }

  /** Averages the numeric metrics of the epoch over ranks (same keys on every rank). */
  async onEpochEnd(_epoch: number, logs?: Record<string, unknown>): Promise<void> {
    if (!this.averageMetrics || !logs) return;
    const keys = Object.keys(logs).sort();
    const values = new Float64Array(keys.length);
    for (let k = 0; k < keys.length; k++) {
      const v = logs[keys[k]];
      values[k] = typeof v === 'number' ? v : (await (v as tf.Scalar).data())[0];
    }
    await this.comm.allReduce(values, { op: 'avg' });
    keys.forEach((key, k) => {
      const old = logs[key];
      if (old instanceof tf.Tensor) old.dispose();
      logs[key] = values[k];
    });
  }

  private optimizer(who: string): DistributedOptimizer {
    const opt = (this.model as unknown as { optimizer: unknown }).optimizer;
    if (!isDistributedOptimizer(opt)) {
      throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `${who}: the model is compiled ` +
        'with a plain optimizer; compile it with new DistributedOptimizer(comm, optimizer) ' +
        'so that gradients are averaged across ranks');
    }
    return opt;
  }
}
