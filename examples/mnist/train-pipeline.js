// SPDX-License-Identifier: Apache-2.0
// Pipeline-parallel MNIST: the MLP as 2 stages (rank 0: input layer + ReLU; rank 1: output
// layer + loss), each batch split into micro-batches that flow through nodeccl.gpipe.
// Run: nodeccl-run -n 2 node examples/mnist/train-pipeline.js [--epochs 5] [--micro-batches 4]
// --check also trains the unsplit model in each process and reports the largest difference
// between its weights and this stage's after every step.
'use strict';

const { Command } = require('commander');
const nodeccl = require('nodeccl');
const { PIXELS, CLASSES, loadSplit } = require('./data');
const m = require('./mlp-parallel');
const { maxDiff } = m;

function parseOptions(argv) {
  const int = (v) => Number.parseInt(v, 10);
  return new Command('mnist-train-pipeline')
    .option('--epochs <n>', 'passes over the training set', int, 5)
    .option('--batch-size <n>', 'batch, split into micro-batches', int, 64)
    .option('--micro-batches <n>', 'micro-batches per batch (GPipe)', int, 4)
    .option('--lr <x>', 'SGD learning rate', Number, 0.1)
    .option('--hidden <n>', 'hidden units', int, 128)
    .option('--seed <n>', 'seed of the weights and shuffles', int, 1)
    .option('--steps <n>', 'stop after this many steps (for tests)', int)
    .option('--check', 'compare with single-process training after every step')
    .parse(argv).opts();
}

/** Adds src into dst (gradient accumulation over micro-batches). */
function accumulate(dst, src) {
  for (let i = 0; i < dst.length; i++) dst[i] += src[i];
}

async function main() {
  const opts = parseOptions(process.argv);
  const world = await nodeccl.init();
  if (world.size !== 2) {
    throw new Error(`train-pipeline: needs exactly 2 ranks (2 stages), got ${world.size}; ` +
      'run it with nodeccl-run -n 2');
  }
  const H = opts.hidden;
  const t0 = performance.now();
  const data = loadSplit();
  const full = m.initialParams(H, opts.seed);
  const ref = opts.check ? full.map((v) => v.slice()) : null;
  const first = world.rank === 0;
  // This stage's weights and gradients: [W1, b1] on stage 0, [W2, b2] on stage 1.
  const [w, b] = first ? [full[0], full[1]] : [full[2], full[3]];
  const gw = new Float32Array(w.length);
  const gb = new Float32Array(b.length);

  // The stage's forward/backward over the micro-batches of `batch` (set before each step).
  let batch = null;
  let mbRows = 0;
  const saved = [];  // per micro-batch: stage 0 its input and output h, stage 1 its input h
  const rowsOf = (mb) => Math.min(batch.rows, (mb + 1) * mbRows) - mb * mbRows;
  const stage = {
    forward(mb, input) {
      const rows = rowsOf(mb);
      if (first) {
        const x = batch.x.subarray(mb * mbRows * PIXELS, (mb * mbRows + rows) * PIXELS);
        const h = m.addBias(nodeccl.matmul(x, w, rows, PIXELS, H), b, rows, H, true);
        saved[mb] = { x, h };
        return h;
      }
      const logits = m.addBias(nodeccl.matmul(input, w, rows, H, CLASSES), b, rows, CLASSES, false);
      const y = batch.y.subarray(mb * mbRows, mb * mbRows + rows);
      saved[mb] = { h: input, ...m.softmaxXent(logits, y, rows, batch.rows) };
      return logits;
    },
    backward(mb, gradOut) {
      const rows = rowsOf(mb);
      const s = saved[mb];
      if (first) {
        const gh = m.reluBack(gradOut, s.h);
        accumulate(gw, nodeccl.matmulTA(s.x, gh, rows, PIXELS, H));
        accumulate(gb, m.colSums(gh, rows, H));
        return null;
      }
      accumulate(gw, nodeccl.matmulTA(s.h, s.grad, rows, H, CLASSES));
      accumulate(gb, m.colSums(s.grad, rows, CLASSES));
      return nodeccl.matmulTB(s.grad, w, rows, CLASSES, H);
    },
  };

  let step = 0;
  let worst = 0;
  outer:
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    const order = m.epochOrder(data.train.count, opts.seed, epoch);
    let lossSum = 0;
    for (let from = 0; from + opts.batchSize <= data.train.count; from += opts.batchSize) {
      batch = m.batchOf(data.train, order, from, from + opts.batchSize);
      mbRows = Math.ceil(batch.rows / opts.microBatches);
      gw.fill(0);
      gb.fill(0);
      await nodeccl.gpipe(world, stage, Math.ceil(batch.rows / mbRows));
      m.sgd([w, b], [gw, gb], opts.lr);
      if (!first) lossSum += saved.reduce((a, s) => a + s.loss, 0);
      step++;
      if (ref) {
        m.sgd(ref, m.localStep(ref, H, batch).grads, opts.lr);
        worst = Math.max(worst, maxDiff(w, ref[first ? 0 : 2]), maxDiff(b, ref[first ? 1 : 3]));
      }
      if (opts.steps && step >= opts.steps) break outer;
    }
    if (!first) {
      console.log(`epoch ${epoch + 1}/${opts.epochs}  loss ` +
        `${(lossSum / data.train.count).toFixed(4)}  time ` +
        `${((performance.now() - t0) / 1000).toFixed(1)}s`);
    }
  }
  // Held-out accuracy: stage 0 sends each batch's hidden activations, stage 1 scores them.
  const acc = await m.accuracy(data.test, async (bt) => {
    const h = new Float32Array(bt.rows * H);
    if (first) {
      m.addBias(nodeccl.matmul(bt.x, w, bt.rows, PIXELS, H, h), b, bt.rows, H, true);
      await world.send(h, 1);
      return new Float32Array(bt.rows * CLASSES);  // scored on stage 1
    }
    await world.recv(h, 0);
    return m.addBias(nodeccl.matmul(h, w, bt.rows, H, CLASSES), b, bt.rows, CLASSES, false);
  });
  const seconds = (performance.now() - t0) / 1000;
  if (!first) {
    console.log(`held-out accuracy ${(100 * acc).toFixed(2)}%  (2 pipeline stages, ` +
      `${opts.microBatches} micro-batches, ${step} steps, ${seconds.toFixed(1)}s)`);
  }
  console.log(JSON.stringify({ rank: world.rank, steps: step, accuracy: first ? null : acc,
    maxDiff: ref ? worst : null, seconds }));
  await world.destroy();
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
