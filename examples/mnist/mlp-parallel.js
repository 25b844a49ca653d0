// SPDX-License-Identifier: Apache-2.0
// The 784-H-10 MLP of model.js in plain JS (nodeccl's float32 matmuls), three ways: on one
// process, with its hidden layer split across a tensor-parallel group, and as two pipeline
// stages. Same initial weights (model.js initParams), same data order, plain SGD, so the split
// runs can be checked against the single-process one step by step.
'use strict';

const nodeccl = require('nodeccl');
const { PIXELS, CLASSES, mulberry32, shuffleInPlace } = require('./data');
const { layout, views, initParams } = require('./model');

const { matmul, matmulTA, matmulTB } = nodeccl;

/** Full initial parameters [W1, b1, W2, b2] for `hidden` units, from model.js's seeded init. */
function initialParams(hidden, seed) {
  const lay = layout(hidden);
  const flat = new Float32Array(lay.size);
  initParams(flat, lay, seed);
  return views(flat, lay).map((v) => v.slice());
}

/** Rows [from, to) of a data set: images [rows x 784], labels. */
function batchOf(set, order, from, to) {
  const x = new Float32Array((to - from) * PIXELS);
  const y = new Uint8Array(to - from);
  for (let i = from; i < to; i++) {
    x.set(set.images.subarray(order[i] * PIXELS, (order[i] + 1) * PIXELS), (i - from) * PIXELS);
    y[i - from] = set.labels[order[i]];
  }
  return { x, y, rows: to - from };
}

/** Every epoch's shuffled order of the training rows (the same on every rank). */
function epochOrder(count, seed, epoch) {
  const order = Array.from({ length: count }, (_, i) => i);
  shuffleInPlace(order, mulberry32(seed * 1000 + epoch));
  return order;
}

/**
 * Softmax cross-entropy against `labels`, scaled by 1/`total` rows (so micro-batch gradients
 * sum to the batch mean). Returns the summed loss, dLoss/dlogits and the correct count.
 */
function softmaxXent(logits, labels, rows, total) {
  const grad = new Float32Array(rows * CLASSES);
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < rows; i++) {
    const o = i * CLASSES;
    let max = -Infinity;
    let best = 0;
    for (let c = 0; c < CLASSES; c++) {
      if (logits[o + c] > max) { max = logits[o + c]; best = c; }
    }
    if (best === labels[i]) correct++;
    let sum = 0;
    for (let c = 0; c < CLASSES; c++) sum += Math.exp(logits[o + c] - max);
    for (let c = 0; c < CLASSES; c++) {
      const p = Math.exp(logits[o + c] - max) / sum;
      grad[o + c] = (p - (c === labels[i] ? 1 : 0)) / total;
    }
    loss -= logits[o + labels[i]] - max - Math.log(sum);
  }
  return { loss, grad, correct };
}

/** y [rows x n] += b (broadcast over rows), then optionally ReLU; returns y. */
function addBias(y, b, rows, n, relu) {
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < n; j++) {
      const v = y[i * n + j] + b[j];
      y[i * n + j] = relu && v < 0 ? 0 : v;
    }
  }
  return y;
}

/** Column sums of g [rows x n]. */
function colSums(g, rows, n) {
  const s = new Float32Array(n);
  for (let i = 0; i < rows; i++) for (let j = 0; j < n; j++) s[j] += g[i * n + j];
  return s;
}

/** Zeroes g where the ReLU output h was 0 (in place). */
function reluBack(g, h) {
  for (let i = 0; i < g.length; i++) if (h[i] <= 0) g[i] = 0;
  return g;
}

/** w -= lr * g, element by element. */
function sgd(ws, gs, lr) {
  ws.forEach((w, k) => { for (let i = 0; i < w.length; i++) w[i] -= lr * gs[k][i]; });
}

/** One process: forward and backward of a batch; gradients in [W1, b1, W2, b2] order. */
function localStep([w1, b1, w2, b2], hidden, { x, y, rows }) {
  const h = addBias(matmul(x, w1, rows, PIXELS, hidden), b1, rows, hidden, true);
  const logits = addBias(matmul(h, w2, rows, hidden, CLASSES), b2, rows, CLASSES, false);
  const { loss, grad, correct } = softmaxXent(logits, y, rows, rows);
  const gh = reluBack(matmulTB(grad, w2, rows, CLASSES, hidden), h);
  return {
    loss: loss / rows, correct,
    grads: [matmulTA(x, gh, rows, PIXELS, hidden), colSums(gh, rows, hidden),
      matmulTA(h, grad, rows, hidden, CLASSES), colSums(grad, rows, CLASSES)],
  };
}

/** Predicted classes' accuracy over a data set, given a logits function of a batch. */
async function accuracy(set, logitsOf) {
  const order = Array.from({ length: set.count }, (_, i) => i);
  let correct = 0;
  for (let from = 0; from < set.count; from += 500) {
    const b = batchOf(set, order, from, Math.min(set.count, from + 500));
    correct += softmaxXent(await logitsOf(b), b.y, b.rows, b.rows).correct;
  }
  return correct / set.count;
}

/** Largest |a - b| relative to max(1, |b|) over matching elements. */
function maxDiff(a, b) {
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  }
  return d;
}

module.exports = { maxDiff, initialParams, batchOf, epochOrder, softmaxXent, addBias, colSums,
  reluBack, sgd, localStep, accuracy };
