// SPDX-License-Identifier: Apache-2.0
// broadcastVariables(): gives every rank the root's values of a tfjs model's weights (or a list
// of tf.Variables), packed into one buffer so that it takes a single broadcast.
// Cost: one broadcast of S bytes (the weights), plus a read and a write of each weight.
import * as tf from '@tensorflow/tfjs';
import type { Communicator } from '../comm';
import { NodecclTypeError } from '../errors';
import { describeValue } from '../options';

/** What broadcastVariables() accepts: a tfjs-layers model or a list of variables. */
export type VariableSource = Pick<tf.LayersModel, 'getWeights' | 'setWeights'> | tf.Variable[];

/**
 * Overwrites the variables of every rank with `root`'s (default rank 0); all ranks call it
 * with models or variable lists of the same shapes, in the same order.
 * LIMITATION: float32 variables only (tfjs model weights are float32); an int32 or bool
 * variable is refused rather than converted.
 */
export async function broadcastVariables(comm: Communicator, source: VariableSource,
                                         root = 0): Promise<void> {
  const who = `rank ${comm.rank}: broadcastVariables()`;
  const values = readValues(who, source);
  const total = values.reduce((s, v) => s + v.size, 0);

  // Pack, broadcast once, unpack into new tensors of the same shapes.
  const flat = new Float32Array(total);
  let off = 0;
  for (const v of values) { flat.set(v.dataSync() as Float32Array, off); off += v.size; }
  await comm.broadcast(flat, { root });
  off = 0;
  const fresh = values.map((v) => {
    const t = tf.tensor(flat.slice(off, off + v.size), v.shape, 'float32');
    off += v.size;
    return t;
  });

  if (Array.isArray(source)) {
    source.forEach((variable, i) => variable.assign(fresh[i]));
  } else {
    source.setWeights(fresh);
  }
  tf.dispose(fresh);   // the variables hold their own references to the new data
}

// The current values, checked to be float32. A model's getWeights() returns its variables
// themselves, not copies: they must not be disposed here.
function readValues(who: string, source: unknown): tf.Tensor[] {
  let values: tf.Tensor[];
  if (Array.isArray(source)) {
    values = source as tf.Variable[];
  } else if (typeof source === 'object' && source !== null && 'getWeights' in source) {
    values = (source as tf.LayersModel).getWeights();
  } else {
    throw new NodecclTypeError(`${who}: pass a tfjs LayersModel or an array of tf.Variable, ` +
      `got ${describeValue(source)}`);
  }
  values.forEach((v, i) => {
    if (v.dtype !== 'float32') {
      const name = (v as tf.Variable).name ?? 'unnamed';
      throw new NodecclTypeError(`${who}: variable ${i} (${name}) is ${v.dtype}; only float32 ` +
        'variables can be broadcast');
    }
  });
  return values;
}
