// SPDX-License-Identifier: Apache-2.0
// Data-parallel training of the MNIST MLP: each rank computes gradients on its share of every
// global batch, one all-reduce averages them, and a fused nodeccl optimizer steps the weights.
// Other modes (--mode): `dp` reduces through DataParallel's buckets, `zero` shards the optimizer
// state (ZeRO-1), `local-sgd` steps each rank alone and averages the weights every H steps.
'use strict';

const { PIXELS, CLASSES, mulberry32, shuffleInPlace, loadSplit } = require('./data');
const model = require('./model');

/**
 * The rows of a global batch of `rows` samples that `rank` of `size` owns: [begin, end).
 * Shares differ by at most one row when `rows` is not divisible by `size` (e.g. 128 rows on
 * 3 ranks: 42, 43, 43), and they tile the batch exactly.
 */
function shareOf(rows, rank, size) {
  return [Math.floor((rank * rows) / size), Math.floor(((rank + 1) * rows) / size)];
}

/**
 * Scratch buffers for one rank's share, allocated once: the inputs gathered in batch order,
 * one-hot targets, and labels. Tensors borrow subarrays of them for one step at a time.
 */
function makeBatchBuffers(maxRows) {
  return {
    x: new Float32Array(maxRows * PIXELS),
    y: new Float32Array(maxRows * CLASSES),
    labels: new Uint8Array(maxRows),
  };
}

/** Copies the samples `order[from..to)` of `set` into `buf`; returns the row count. */
function fillBatch(buf, set, order, from, to) {
  const rows = to - from;
  buf.y.fill(0, 0, rows * CLASSES);
  for (let r = 0; r < rows; r++) {
    const src = order[from + r];
    buf.x.set(set.images.subarray(src * PIXELS, (src + 1) * PIXELS), r * PIXELS);
    buf.labels[r] = set.labels[src];
    buf.y[r * CLASSES + set.labels[src]] = 1;
  }
  return rows;
}

/**
 * Gradient of `scale * (sum of per-sample cross-entropy over the rows in buf)` with respect to
 * every parameter, written into `grads` (same layout as `params`). Returns the scaled loss and
 * the number of rows predicted correctly. The caller's arrays are never retained past return.
 */
function localGradients(tf, params, lay, buf, rows, scale, grads) {
  const x = tf.tensor2d(buf.x.subarray(0, rows * PIXELS), [rows, PIXELS]);
  const y = tf.tensor2d(buf.y.subarray(0, rows * CLASSES), [rows, CLASSES]);
  const weights = model.paramTensors(params, lay);
  let correct = 0;

  // Accuracy is read from the logits inside the taped function, so the forward pass runs once.
  const loss = (...w) => {
    const logits = model.logitsOf(x, w);
    correct = model.countCorrect(logits.dataSync(), buf.labels, rows);
    return tf.mul(tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(logits)))), scale);
  };
  const { value, grads: g } = tf.valueAndGrads(loss)(weights);

  for (let i = 0; i < g.length; i++) grads.set(g[i].dataSync(), lay.parts[i].offset);
  const lossValue = value.dataSync()[0];
  tf.dispose([x, y, weights, g, value]);
  return { loss: lossValue, correct };
}

/**
 * One data-parallel step on the global batch `order[from..to)`; synchronous in the SGD sense:
 * every rank's update waits for every rank's gradients.
 *
 * Each rank scales its summed loss by size / rows, so the all-reduce average over ranks is
 *   (1 / size) * sum_r (size / rows) * sum_{i in share r} grad_i = (1 / rows) * sum_i grad_i,
 * the mean gradient over the whole global batch even when shares are unequal (or empty).
 * The batch loss and correct count ride in the same buffer after the gradients, so one
 * all-reduce per step carries everything.
 */
async function trainStep(ctx, order, from, to) {
  const { comm, tf, params, lay, packed, gradViews, buf, opt } = ctx;
  const rows = to - from;
  const [begin, end] = shareOf(rows, comm.rank, comm.size);
  const scale = comm.size / rows;
  const stats = packed.subarray(lay.size);

  if (end > begin) {
    fillBatch(buf, ctx.data.train, order, from + begin, from + end);
    const r = localGradients(tf, params, lay, buf, end - begin, scale, packed);
    stats[0] = r.loss;
    stats[1] = r.correct * scale;
  } else {
    packed.fill(0);
  }

  await reduceAndStep(ctx);
  return { loss: stats[0], correct: stats[1] * rows };
}

/**
 * Averages the packed gradients (and statistics) over ranks and steps the optimizer, by the
 * mode's route. All give the same update, up to the order float32 sums are taken in.
 */
async function reduceAndStep(ctx) {
  const { comm, packed, gradViews, opt, dp, lay } = ctx;
  if (ctx.mode === 'allreduce') {
    await comm.allReduce(packed, { op: 'avg' });
    opt.step(gradViews);
  } else if (ctx.mode === 'dp') {
    // The statistics are DataParallel's last "gradient"; layers go last to first, as a
    // backward pass produces them (tfjs hands them over all at once, after its backward).
    for (let i = dp.grads.length - 1; i >= 0; i--) {
      dp.gradReady(i, i < gradViews.length ? gradViews[i] : packed.subarray(lay.size));
    }
    const reduced = await dp.synchronize();
    packed.set(reduced[reduced.length - 1], lay.size);
    opt.step(reduced.slice(0, gradViews.length));
  } else if (ctx.mode === 'zero') {
    const stats = packed.subarray(lay.size);
    await comm.allReduce(stats, { op: 'avg' });
    await opt.step(gradViews);
  } else {
    throw new Error(`mnist: unknown mode "${ctx.mode}"; use allreduce, dp, zero or local-sgd`);
  }
}

/**
 * Local SGD: this rank steps its own weights on its own share of the batch (its gradient is
 * the mean over its rows), and every --local-steps steps the ranks average their weights. The
 * statistics are this rank's own, scaled to the global batch: an estimate, not an exchange.
 */
async function localStep(ctx, order, from, to) {
  const { comm, tf, params, lay, packed, gradViews, buf, opt, localSgd } = ctx;
  const rows = to - from;
  const [begin, end] = shareOf(rows, comm.rank, comm.size);
  let r = { loss: 0, correct: 0 };
  if (end > begin) {
    fillBatch(buf, ctx.data.train, order, from + begin, from + end);
    r = localGradients(tf, params, lay, buf, end - begin, 1 / (end - begin), packed);
    opt.step(gradViews);
  }
  await localSgd.step();
  return { loss: r.loss, correct: (r.correct * rows) / Math.max(1, end - begin) };
}

/**
 * Accuracy on `set`, with the set split across ranks and their correct counts summed. Every
 * rank holds identical parameters, so each share is scored by the same model.
 */
async function evaluate(ctx, set) {
  const { comm, tf, params, lay } = ctx;
  const [begin, end] = shareOf(set.count, comm.rank, comm.size);
  const correct = new Float32Array(1);
  const weights = model.paramTensors(params, lay);

  // Chunks bound the memory of one forward pass; counts are integers, exact in float32.
  for (let from = begin; from < end; from += 500) {
    const to = Math.min(end, from + 500);
    const x = tf.tensor2d(set.images.subarray(from * PIXELS, to * PIXELS), [to - from, PIXELS]);
    const logits = tf.tidy(() => model.logitsOf(x, weights));  // frees the hidden layer
    correct[0] += model.countCorrect(logits.dataSync(), set.labels.subarray(from, to), to - from);
    tf.dispose([x, logits]);
  }
  tf.dispose(weights);

  await comm.allReduce(correct, { op: 'sum' });
  return correct[0] / set.count;
}

/**
 * Adam by default; plain SGD (with optional momentum) is there because, unlike Adam, its step
 * is proportional to the gradient, so a test can see a mis-scaled average.
 */
function makeOptimizer(nodeccl, paramViews, opts) {
  const name = opts.optimizer || 'adam';
  if (name === 'adam') return new nodeccl.Adam(paramViews, { lr: opts.lr });
  if (name === 'sgd') return new nodeccl.SGD(paramViews, { lr: opts.lr, momentum: opts.momentum });
  throw new Error(`mnist: unknown optimizer "${name}"; use adam or sgd`);
}

/**
 * Sets up the data, identical parameters on every rank (rank 0 draws them and broadcasts), and
 * the optimizer over views of the one flat parameter buffer.
 */
async function setup(comm, nodeccl, opts) {
  const tf = await model.loadTf();
  const data = loadSplit({ trainCount: opts.trainCount, testCount: opts.testCount });
  const lay = model.layout(opts.hidden);

  const params = new Float32Array(lay.size);
  if (comm.rank === 0) model.initParams(params, lay, opts.seed);
  await comm.broadcast(params, { root: 0 });

  // Gradients first, then [loss, correct]: the single buffer of the per-step all-reduce.
  const packed = new Float32Array(lay.size + 2);
  const gradViews = model.views(packed.subarray(0, lay.size), lay);
  const buf = makeBatchBuffers(Math.ceil(opts.batchSize / comm.size));
  const mode = opts.mode || 'allreduce';
  const ctx = { comm, tf, data, lay, params, packed, gradViews, buf, mode };

  // The optimizer, and what the mode reduces through.
  const paramViews = model.views(params, lay);
  if (mode === 'zero') {
    ctx.opt = new nodeccl.ZeroRedundancyOptimizer(comm, paramViews,
      (p) => makeOptimizer(nodeccl, p, opts));
  } else {
    ctx.opt = makeOptimizer(nodeccl, paramViews, opts);
  }
  if (mode === 'dp') {
    const sizes = [...lay.parts.map((p) => p.size), 2];
    ctx.dp = new nodeccl.DataParallel(comm, sizes,
      { bucketBytes: Math.round((opts.bucketMb ?? 25) * 1024 * 1024) });
  }
  if (mode === 'local-sgd') {
    ctx.localSgd = new nodeccl.LocalSGD(comm, [params], { period: opts.localSteps ?? 8 });
  }
  return ctx;
}

/**
 * Trains for `opts.epochs` epochs, or stops after `opts.steps` steps in all when that is set.
 * The hooks `onEpochStart`, `onStep`, `onGlobalStep(stepsDone, ctx)` and `onEpochEnd` (the
 * last two may return a Promise) report progress on every rank; the caller decides who
 * prints. Returns the context (parameters included) and per-epoch statistics.
 */
async function train(comm, nodeccl, opts, hooks = {}) {
  const ctx = await setup(comm, nodeccl, opts);
  const n = ctx.data.train.count;
  const B = opts.batchSize;
  const stepsPerEpoch = Math.ceil(n / B);
  const rand = mulberry32(opts.seed ^ 0x5eed);
  const order = Array.from({ length: n }, (_, i) => i);
  const history = [];
  let stepsDone = 0;

  for (let epoch = 1; epoch <= opts.epochs; epoch++) {
    // Every rank draws the same permutation from the same seed: no communication needed.
    shuffleInPlace(order, rand);
    const t0 = performance.now();
    let lossSum = 0;
    let correct = 0;
    let seen = 0;
    if (hooks.onEpochStart) hooks.onEpochStart(epoch, stepsPerEpoch);

    for (let s = 0; s < stepsPerEpoch && !(opts.steps && stepsDone >= opts.steps); s++) {
      const from = s * B;
      const to = Math.min(n, from + B);
      const r = ctx.mode === 'local-sgd' ? await localStep(ctx, order, from, to)
        : await trainStep(ctx, order, from, to);
      lossSum += r.loss * (to - from);
      correct += r.correct;
      seen += to - from;
      stepsDone++;
      if (hooks.onStep) hooks.onStep(s + 1, { loss: lossSum / seen, acc: correct / seen });
      if (hooks.onGlobalStep) await hooks.onGlobalStep(stepsDone, ctx);
    }

    const stats = { epoch, loss: lossSum / seen, acc: correct / seen,
      seconds: (performance.now() - t0) / 1000, steps: stepsDone };
    history.push(stats);
    // Local SGD ends an epoch with one model: the ranks' weights agree for evaluation.
    if (ctx.localSgd && ctx.localSgd.stepsSinceAverage > 0) await ctx.localSgd.average();
    if (hooks.onEpochEnd) await hooks.onEpochEnd(stats, ctx);
    if (opts.steps && stepsDone >= opts.steps) break;
  }
  return { ctx, history };
}

module.exports = { shareOf, train, evaluate, makeBatchBuffers, fillBatch, localGradients };
