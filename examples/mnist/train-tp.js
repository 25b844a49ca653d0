// SPDX-License-Identifier: Apache-2.0
// Tensor-parallel MNIST: the MLP's hidden layer split across the ranks (W1 by columns, W2 by
// rows: one all-reduce of the logits forward, none needed backward for the input layer).
// Run: nodeccl-run -n 2 node examples/mnist/train-tp.js [--epochs 5] [--check]
// --check also trains the unsplit model in each process and reports the largest difference
// between its weights and this rank's shards after every step.
'use strict';

const { Command } = require('commander');
const nodeccl = require('nodeccl');
const { PIXELS, CLASSES, loadSplit } = require('./data');
const m = require('./mlp-parallel');
const { maxDiff } = m;

function parseOptions(argv) {
  const int = (v) => Number.parseInt(v, 10);
  return new Command('mnist-train-tp')
    .option('--epochs <n>', 'passes over the training set', int, 5)
    .option('--batch-size <n>', 'batch (every rank sees all of it)', int, 64)
    .option('--lr <x>', 'SGD learning rate', Number, 0.1)
    .option('--hidden <n>', 'hidden units (a multiple of the ranks)', int, 128)
    .option('--seed <n>', 'seed of the weights and shuffles', int, 1)
    .option('--steps <n>', 'stop after this many steps (for tests)', int)
    .option('--check', 'compare with single-process training after every step')
    .parse(argv).opts();
}

async function main() {
  const opts = parseOptions(process.argv);
  const world = await nodeccl.init();
  const t0 = performance.now();
  const data = loadSplit();
  const full = m.initialParams(opts.hidden, opts.seed);
  const ref = opts.check ? full.map((v) => v.slice()) : null;
  const l1 = nodeccl.ColumnParallelLinear.shard(world, PIXELS, opts.hidden, full[0], full[1]);
  const l2 = nodeccl.RowParallelLinear.shard(world, opts.hidden, CLASSES, full[2], full[3]);
  const col = new nodeccl.ColumnParallelLinear(world, PIXELS, opts.hidden, l1.weight, l1.bias,
    { gatherOutput: false, inputGrad: false });
  const row = new nodeccl.RowParallelLinear(world, opts.hidden, CLASSES, l2.weight, l2.bias);
  const local = col.end - col.begin;
  const relu = (h) => { for (let i = 0; i < h.length; i++) if (h[i] < 0) h[i] = 0; return h; };

  let step = 0;
  let worst = 0;
  let lossSum = 0;
  let seen = 0;
  outer:
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    const order = m.epochOrder(data.train.count, opts.seed, epoch);
    for (let from = 0; from + opts.batchSize <= data.train.count; from += opts.batchSize) {
      const b = m.batchOf(data.train, order, from, from + opts.batchSize);
      const h = relu(await col.forward(b.x));
      const logits = await row.forward(h);
      const { loss, grad } = m.softmaxXent(logits, b.y, b.rows, b.rows);
      const gh = m.reluBack(await row.backward(grad), h);
      await col.backward(gh);
      m.sgd([col.weight, col.bias, row.weight, row.bias],
        [col.gradW, col.gradB, row.gradW, row.gradB], opts.lr);
      lossSum += loss;
      seen += b.rows;
      step++;
      if (ref) {
        m.sgd(ref, m.localStep(ref, opts.hidden, b).grads, opts.lr);
        const r1 = nodeccl.sliceColumns(ref[0], PIXELS, opts.hidden, col.begin, col.end);
        worst = Math.max(worst, maxDiff(col.weight, r1),
          maxDiff(col.bias, ref[1].subarray(col.begin, col.end)),
          maxDiff(row.weight, ref[2].subarray(row.begin * CLASSES, row.end * CLASSES)),
          maxDiff(row.bias, ref[3]));
      }
      if (opts.steps && step >= opts.steps) break outer;
    }
    if (world.rank === 0) {
      console.log(`epoch ${epoch + 1}/${opts.epochs}  loss ${(lossSum / seen).toFixed(4)}  ` +
        `time ${((performance.now() - t0) / 1000).toFixed(1)}s`);
    }
    lossSum = 0;
    seen = 0;
  }
  const acc = await m.accuracy(data.test,
    async (b) => row.forward(relu(await col.forward(b.x))));
  const seconds = (performance.now() - t0) / 1000;
  if (world.rank === 0) {
    console.log(`held-out accuracy ${(100 * acc).toFixed(2)}%  (${world.size} tensor-parallel ` +
      `ranks, ${local} hidden units each, ${step} steps, ${seconds.toFixed(1)}s)`);
  }
  console.log(JSON.stringify({ rank: world.rank, steps: step, accuracy: acc,
    maxDiff: ref ? worst : null, seconds }));
  await world.destroy();
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
