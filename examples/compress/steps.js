// SPDX-License-Identifier: Apache-2.0
// The compression steps of the example, on the MNIST MLP of examples/mnist: masked fine-tuning,
// distillation into a smaller student, turning parameters into compressed records and back,
// and scoring a parameter buffer on the held-out digits.
'use strict';

const { PIXELS, CLASSES, mulberry32, shuffleInPlace } = require('../mnist/data');
const model = require('../mnist/model');
const { evaluate } = require('../mnist/trainer');

/**
 * dL/d(params) for one batch, where the loss's gradient with respect to the logits comes from
 * `lossOf(logits) -> { loss, grad }` (a native nodeccl loss). TensorFlow.js backpropagates it
 * through the MLP as the gradient of sum(logits * G), G being that gradient held constant; it
 * is read inside the taped function, so the forward pass runs once. Writes `grads` (the
 * parameter layout) and returns the loss.
 */
function backprop(tf, params, lay, xRows, rows, lossOf, grads) {
  const x = tf.tensor2d(xRows, [rows, PIXELS]);
  const weights = model.paramTensors(params, lay);
  let loss = 0;
  const g = tf.grads((...w) => {
    const logits = model.logitsOf(x, w);
    const r = lossOf(logits.dataSync());
    loss = r.loss;
    return tf.sum(tf.mul(logits, tf.tensor2d(r.grad, [rows, CLASSES])));
  })(weights);
  for (let i = 0; i < g.length; i++) grads.set(g[i].dataSync(), lay.parts[i].offset);
  tf.dispose([x, weights, g]);
  return loss;
}

/**
 * Trains `params` for `epochs` over `set` with Adam, the batch gradient given by `lossOf(logits,
 * batchRows)`. `afterStep(paramViews, gradViews, opt)` replaces the plain optimizer step when
 * given (the masked step of pruning). Returns the mean loss of the last epoch.
 */
function trainLoop(nodeccl, tf, params, lay, set, opts, lossOf, maskedStep) {
  const views = model.views(params, lay);
  const grads = new Float32Array(lay.size);
  const gradViews = model.views(grads, lay);
  const opt = new nodeccl.Adam(views, { lr: opts.lr });
  const order = Array.from({ length: set.count }, (_, i) => i);
  const rand = mulberry32(opts.seed);
  const x = new Float32Array(opts.batchSize * PIXELS);
  const rowsIdx = new Int32Array(opts.batchSize);
  let last = 0;
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    shuffleInPlace(order, rand);
    let sum = 0;
    for (let from = 0; from < set.count; from += opts.batchSize) {
      const rows = Math.min(opts.batchSize, set.count - from);
      for (let r = 0; r < rows; r++) {
        rowsIdx[r] = order[from + r];
        x.set(set.images.subarray(rowsIdx[r] * PIXELS, (rowsIdx[r] + 1) * PIXELS), r * PIXELS);
      }
      const batch = rowsIdx.subarray(0, rows);
      sum += rows * backprop(tf, params, lay, x.subarray(0, rows * PIXELS), rows,
        (logits) => lossOf(logits, batch), grads);
      if (maskedStep) maskedStep(opt, views, gradViews);
      else opt.step(gradViews);
    }
    last = sum / set.count;
  }
  return last;
}

/** Logits of every row of `set` under `params` (in chunks, to bound memory). */
function logitsOfSet(tf, params, lay, set) {
  const out = new Float32Array(set.count * CLASSES);
  const weights = model.paramTensors(params, lay);
  for (let from = 0; from < set.count; from += 1000) {
    const to = Math.min(set.count, from + 1000);
    const x = tf.tensor2d(set.images.subarray(from * PIXELS, to * PIXELS), [to - from, PIXELS]);
    const logits = tf.tidy(() => model.logitsOf(x, weights));
    out.set(logits.dataSync(), from * CLASSES);
    tf.dispose([x, logits]);
  }
  tf.dispose(weights);
  return out;
}

/** Held-out accuracy of a parameter buffer (a world of one: the all-reduce is a no-op). */
async function accuracy(comm, tf, params, lay, set) {
  return evaluate({ comm, tf, params, lay }, set);
}

/**
 * Compressed records of the MLP's parameters, by name. `encodeWeight(values, shape)` makes the
 * record of a weight matrix; biases (H + 10 floats) stay dense.
 */
function recordsOf(nodeccl, params, lay, encodeWeight) {
  const [w1, b1, w2, b2] = model.views(params, lay);
  const [s1, sb1, s2, sb2] = lay.parts.map((p) => p.shape);
  return {
    W1: encodeWeight(w1, s1),
    b1: nodeccl.toDense(b1, sb1),
    W2: encodeWeight(w2, s2),
    b2: nodeccl.toDense(b2, sb2),
  };
}

/** A flat parameter buffer rebuilt from a loaded model's records. */
function paramsOf(nodeccl, loaded, lay) {
  const params = new Float32Array(lay.size);
  ['W1', 'b1', 'W2', 'b2'].forEach((name, i) => {
    params.set(nodeccl.decompress(loaded.tensors[name]), lay.parts[i].offset);
  });
  return params;
}

module.exports = { trainLoop, logitsOfSet, accuracy, recordsOf, paramsOf };
