// SPDX-License-Identifier: Apache-2.0
// MNIST with an ordinary tfjs-layers script (tf.sequential + model.fit) made data parallel by
// nodeccl/tfjs: the lines marked "nodeccl" are all it takes. Run one copy per rank:
// `node dist/cli/run.js -np 4 node examples/mnist/train-tfjs.js`.
'use strict';

const fs = require('node:fs');
const { Command, InvalidArgumentError, Option } = require('commander');
const { PIXELS, CLASSES, loadSplit } = require('./data');
const { loadTf, countCorrect } = require('./model');

function positiveInt(name) {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      throw new InvalidArgumentError(`${name} must be a positive integer, got "${value}"`);
    }
    return n;
  };
}

function parseOptions(argv) {
  const program = new Command('mnist-train-tfjs')
    .description('Data-parallel tfjs-layers MLP (model.fit) on the mnist package digits.')
    .option('--epochs <n>', 'passes over the training set', positiveInt('--epochs'), 5)
    .option('--batch-size <n>', 'global batch, split across ranks', positiveInt('--batch-size'),
      128)
    .option('--lr <x>', 'learning rate', Number, 3e-3)
    .addOption(new Option('--optimizer <name>', 'tfjs adam, or nodeccl\'s fused Adam')
      .choices(['adam', 'fused-adam', 'sgd']).default('adam'))
    .option('--hidden <n>', 'hidden units', positiveInt('--hidden'), 128)
    .option('--seed <n>', 'seed of the initial weights', positiveInt('--seed'), 1)
    .option('--train-count <n>', 'training digits used (of 8,000)', positiveInt('--train-count'),
      8000)
    .option('--no-shuffle', 'keep each rank\'s rows in order (for tests)')
    .option('--dump-params <file>', 'write the final weights (raw float32); "{rank}" in the ' +
      'name is replaced by the rank, otherwise only rank 0 writes')
    .showHelpAfterError();
  program.parse(argv);
  return program.opts();
}

/**
 * This rank's rows: global batch j is rows [jB, (j+1)B), and rank r takes the r-th of its n
 * equal parts, so n ranks at batch B/n see what one process sees at batch B. Rows past the
 * last full global batch are left out, so that every rank runs the same number of batches.
 */
function shard(set, count, B, rank, size) {
  const per = B / size;
  const batches = Math.floor(Math.min(count, set.count) / B);
  const x = new Float32Array(batches * per * PIXELS);
  const y = new Float32Array(batches * per * CLASSES);
  for (let j = 0; j < batches; j++) {
    for (let k = 0; k < per; k++) {
      const src = j * B + rank * per + k;
      const dst = j * per + k;
      x.set(set.images.subarray(src * PIXELS, (src + 1) * PIXELS), dst * PIXELS);
      y[dst * CLASSES + set.labels[src]] = 1;
    }
  }
  return { x, y, rows: batches * per };
}

function buildModel(tf, opts) {
  const init = (k) => tf.initializers.glorotUniform({ seed: opts.seed + k });
  return tf.sequential({ layers: [
    tf.layers.dense({ inputShape: [PIXELS], units: opts.hidden, activation: 'relu',
      kernelInitializer: init(0) }),
    tf.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: init(1) }),
  ] });
}

async function main() {
  const opts = parseOptions(process.argv);
  const t0 = performance.now();
  const tf = await loadTf();
  const nodeccl = require('nodeccl');
  const { DistributedOptimizer, DistributedCallback } = require('nodeccl/tfjs');  // nodeccl
  const comm = await nodeccl.init();                                             // nodeccl
  const print = (s) => { if (comm.rank === 0) process.stdout.write(`${s}\n`); };
  if (opts.batchSize % comm.size !== 0) {
    throw new Error(`--batch-size ${opts.batchSize} must be a multiple of the ${comm.size} ranks`);
  }

  const data = loadSplit();
  const mine = shard(data.train, opts.trainCount, opts.batchSize, comm.rank, comm.size);
  const model = buildModel(tf, opts);
  const inner = opts.optimizer === 'adam' ? tf.train.adam(opts.lr)
    : opts.optimizer === 'sgd' ? tf.train.sgd(opts.lr)
      : (p) => new nodeccl.Adam(p, { lr: opts.lr });
  const optimizer = new DistributedOptimizer(comm, inner);                       // nodeccl
  model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  print(`mnist-tfjs: ${comm.size} rank(s), global batch ${opts.batchSize}, ${opts.optimizer} ` +
    `lr ${opts.lr}, ${mine.rows} rows per rank`);

  const x = tf.tensor2d(mine.x, [mine.rows, PIXELS]);
  const y = tf.tensor2d(mine.y, [mine.rows, CLASSES]);
  await model.fit(x, y, {
    epochs: opts.epochs, batchSize: opts.batchSize / comm.size, shuffle: opts.shuffle,
    verbose: 0,
    callbacks: [
      new DistributedCallback(comm),                                             // nodeccl
      new tf.CustomCallback({ onEpochEnd: async (epoch, logs) => print(`epoch ${epoch + 1}/` +
        `${opts.epochs}  loss ${logs.loss.toFixed(4)}  train acc ` +
        `${(100 * logs.acc).toFixed(2)}%  time ${((performance.now() - t0) / 1000).toFixed(1)}s`),
      }),
    ],
  });
  tf.dispose([x, y]);

  // Held-out accuracy: each rank scores its part of the test set, the counts are summed.
  const test = data.test;
  const [a, b] = [Math.floor((comm.rank * test.count) / comm.size),
    Math.floor(((comm.rank + 1) * test.count) / comm.size)];
  const tx = tf.tensor2d(test.images.subarray(a * PIXELS, b * PIXELS), [b - a, PIXELS]);
  const probs = model.predict(tx);
  const correct = new Float32Array([countCorrect(probs.dataSync(), test.labels.subarray(a, b),
    b - a)]);
  tf.dispose([tx, probs]);
  await comm.allReduce(correct, { op: 'sum' });
  print(`held-out accuracy ${(100 * correct[0] / test.count).toFixed(2)}% on ${test.count} ` +
    `digits; total ${((performance.now() - t0) / 1000).toFixed(1)}s`);

  if (opts.dumpParams) {
    const file = opts.dumpParams.includes('{rank}') ?
      opts.dumpParams.replaceAll('{rank}', String(comm.rank)) : comm.rank === 0 ? opts.dumpParams
        : null;
    const weights = model.getWeights().map((w) => Buffer.from(w.dataSync().buffer));
    if (file) fs.writeFileSync(file, Buffer.concat(weights));
  }
  await comm.destroy();
}

main().catch((err) => {
  process.stderr.write(`mnist-tfjs: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 1;
});
