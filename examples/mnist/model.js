// SPDX-License-Identifier: Apache-2.0
// A 784-H-10 multilayer perceptron whose weights live in one Float32Array owned by the caller;
// TensorFlow.js (pure-JS CPU backend) only borrows them to compute a loss and its gradients.
'use strict';

const { PIXELS, CLASSES, mulberry32 } = require('./data');

let tf;

/**
 * Loads TensorFlow.js on its pure-JS CPU backend, quietly. PROD mode silences the
 * "looks like you are running TensorFlow.js in Node.js" banner (tfjs-node is not used here).
 */
async function loadTf() {
  if (tf) return tf;
  tf = require('@tensorflow/tfjs');
  tf.env().set('PROD', true);
  await tf.setBackend('cpu');
  await tf.ready();
  return tf;
}

/**
 * The parameter layout inside the flat buffer, in order: W1 [784 x H], b1 [H], W2 [H x 10],
 * b2 [10]. Gradients use the same layout, so one all-reduce covers them all.
 */
function layout(hidden) {
  const shapes = [[PIXELS, hidden], [hidden], [hidden, CLASSES], [CLASSES]];
  const parts = [];
  let offset = 0;
  for (const shape of shapes) {
    const size = shape.reduce((a, b) => a * b, 1);
    parts.push({ shape, offset, size });
    offset += size;
  }
  return { hidden, parts, size: offset };
}

/** Views of `flat` in layout order (no copies): [W1, b1, W2, b2]. */
function views(flat, lay) {
  return lay.parts.map((p) => flat.subarray(p.offset, p.offset + p.size));
}

/**
 * He-uniform weights (limit sqrt(6 / fan_in), suited to ReLU) and zero biases, drawn from a
 * seeded PRNG. Only rank 0 calls this; the other ranks receive the values by broadcast.
 */
function initParams(flat, lay, seed) {
  const rand = mulberry32(seed);
  const [w1, b1, w2, b2] = views(flat, lay);
  const fill = (w, fanIn) => {
    const limit = Math.sqrt(6 / fanIn);
    for (let i = 0; i < w.length; i++) w[i] = (2 * rand() - 1) * limit;
  };
  fill(w1, PIXELS);
  fill(w2, lay.hidden);
  b1.fill(0);
  b2.fill(0);
}

/** Wraps the caller's arrays as tensors. The CPU backend keeps a reference, it does not copy. */
function paramTensors(flat, lay) {
  return views(flat, lay).map((v, i) => tf.tensor(v, lay.parts[i].shape, 'float32'));
}

/** logits = relu(x W1 + b1) W2 + b2, for x [rows x 784]. */
function logitsOf(x, [w1, b1, w2, b2]) {
  const h = tf.relu(tf.add(tf.matMul(x, w1), b1));
  return tf.add(tf.matMul(h, w2), b2);
}

/** How many rows of `logits` (read back as a flat array) put their maximum on the label. */
function countCorrect(logitValues, labels, rows) {
  let correct = 0;
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < CLASSES; c++) {
      if (logitValues[r * CLASSES + c] > logitValues[r * CLASSES + best]) best = c;
    }
    if (best === labels[r]) correct++;
  }
  return correct;
}

module.exports = { loadTf, layout, views, initParams, paramTensors, logitsOf, countCorrect };
