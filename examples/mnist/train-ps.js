// SPDX-License-Identifier: Apache-2.0
// MNIST MLP training through nodeccl's parameter server: workers compute gradients with tfjs on
// their share of each global batch and push them; servers hold the weights and apply Adam.
//   node dist/cli/run.js --servers 2 -np 2 node examples/mnist/train-ps.js [--mode sync|async]
//       [--staleness K]
// Sync mode averages every worker's gradient into one step (the same steps as train.js's
// all-reduce training); async mode applies each push alone, a worker held back when it is more
// than K pushes ahead of the slowest. Worker 0 prints progress, throughput and accuracy.
// Cost per step on each worker: one push and one pull of the whole model (101,770 floats,
// 407 KB, at 128 hidden units), split across the servers; sync mode also waits for the slowest.
'use strict';

const fs = require('node:fs');
const { Command, InvalidArgumentError, Option } = require('commander');

/** Parses a whole number >= `min` or explains which value was wrong. */
function intAtLeast(name, min) {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got "${value}"`);
    }
    return n;
  };
}

function positiveNumber(value) {
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError(`must be a positive number, got "${value}"`);
  return n;
}

// Every process of the job (servers too) parses the same command line; the defaults are
// train.js's, so the two scripts train the same model on the same batches.
function parseOptions(argv) {
  const program = new Command('mnist-train-ps')
    .description('Parameter-server MLP training on the mnist package digits (8,000 train / ' +
      '2,000 held out); start with nodeccl-run --servers S -np N.')
    .option('--epochs <n>', 'passes over the training set', intAtLeast('--epochs', 1), 5)
    .option('--batch-size <n>', 'global batch, split across workers',
      intAtLeast('--batch-size', 1), 128)
    .option('--lr <x>', "learning rate of the servers' Adam", positiveNumber, 3e-3)
    .option('--seed <n>', 'seed for the initial weights and the shuffles', intAtLeast('--seed', 1),
      1)
    .option('--hidden <n>', 'hidden units', intAtLeast('--hidden', 1), 128)
    .addOption(new Option('--mode <mode>', 'sync: one averaged step per global batch; async: ' +
      'each push applied as it arrives').choices(['sync', 'async']).default('sync'))
    .option('--staleness <K>', 'async: most pushes a worker may be ahead of the slowest ' +
      '(default unbounded)', intAtLeast('--staleness', 0))
    .option('--steps <n>', 'stop after this many steps in all (for tests)',
      intAtLeast('--steps', 1))
    .option('--dump-params <file>', 'write the final parameters (raw float32); "{rank}" in the ' +
      'name is replaced by the worker rank, otherwise only worker 0 writes')
    .option('--no-eval', 'skip the held-out evaluation')
    .showHelpAfterError();
  program.parse(argv);
  const opts = program.opts();
  if (opts.staleness !== undefined && opts.mode !== 'async') {
    program.error(`--staleness ${opts.staleness} needs --mode async: sync mode steps all ` +
      'workers together, so no worker is ever ahead');
  }
  return opts;
}

/** A server: holds its shards of the weights and runs Adam on them until the workers leave. */
async function server(nodeccl, opts) {
  const srv = await nodeccl.PSServer.start({
    mode: opts.mode, staleness: opts.staleness,
    optimizer: (params) => new nodeccl.Adam(params, { lr: opts.lr }),
  });
  const s = await srv.finished;
  process.stdout.write(`server ${s.serverRank}: ${s.version} updates applied, ` +
    `${s.workersLeft.length} worker(s) left, ${s.workersLost.length} lost\n`);
}

/**
 * A worker's gradient for the global batch `order[from..to)`, written into ctx.grads.
 *
 * Sync: each worker scales its summed loss by W / rows, so the servers' average over the W
 * workers is (1 / rows) * sum_i grad_i, the global batch mean (as trainer.js's all-reduce).
 * Async: each push is its own step, so it carries the mean over this worker's rows alone.
 * Returns this worker's mean loss and correct count on its rows, or null for an empty share.
 */
function shareGradient(ctx, order, from, to) {
  const { tf, params, lay, buf, grads, W, rank, opts, trainer } = ctx;
  const rows = to - from;
  const [begin, end] = trainer.shareOf(rows, rank, W);
  if (end === begin) {
    grads.fill(0);
    return null;
  }
  trainer.fillBatch(buf, ctx.data.train, order, from + begin, from + end);
  const scale = opts.mode === 'sync' ? W / rows : 1 / (end - begin);
  const r = trainer.localGradients(tf, params, lay, buf, end - begin, scale, grads);
  return { loss: r.loss / (scale * (end - begin)), correct: r.correct, rows: end - begin };
}

/** Writes the flat parameter buffer, as raw little-endian float32, for tests to compare. */
function dumpParams(template, rank, params) {
  const file = template.includes('{rank}') ? template.replaceAll('{rank}', String(rank))
    : rank === 0 ? template : null;
  if (file) {
    fs.writeFileSync(file, Buffer.from(params.buffer, params.byteOffset, params.byteLength));
  }
}

/**
 * A worker: draws the same shuffles as every other worker (same seed, no communication),
 * trains on its share of each global batch through push/pull, then scores the held-out set
 * together with the other workers over a communicator of their own.
 */
async function worker(nodeccl, opts) {
  const trainer = require('./trainer');
  const model = require('./model');
  const { mulberry32, shuffleInPlace, loadSplit } = require('./data');
  const tf = await model.loadTf();
  const comm = await nodeccl.init();
  const W = comm.size;
  const print = comm.rank === 0 ? (s) => process.stdout.write(`${s}\n`) : () => undefined;

  // One flat buffer each for weights and gradients; the servers see them as four named keys.
  const lay = model.layout(opts.hidden);
  const params = new Float32Array(lay.size);
  const grads = new Float32Array(lay.size);
  const names = ['W1', 'b1', 'W2', 'b2'];
  const asMap = (flat) => Object.fromEntries(model.views(flat, lay).map((v, i) => [names[i], v]));
  const gradMap = asMap(grads);

  // Worker 0's values initialize the servers; everyone then pulls them.
  if (comm.rank === 0) model.initParams(params, lay, opts.seed);
  const ps = await nodeccl.PSWorker.connect({ params: asMap(params) });
  await ps.pull();
  print(`mnist-ps: ${W} worker(s), ${ps.numServers} server(s), mode ${opts.mode}` +
    (opts.mode === 'async' ? `, staleness ${opts.staleness ?? 'unbounded'}` : '') +
    `, global batch ${opts.batchSize}, adam lr ${opts.lr}, hidden ${opts.hidden}, ` +
    `${opts.epochs} epoch(s), seed ${opts.seed}`);

  const data = loadSplit();
  const buf = trainer.makeBatchBuffers(Math.ceil(opts.batchSize / W));
  const ctx = { tf, data, lay, params, grads, buf, W, rank: comm.rank, opts, trainer };
  const n = data.train.count;
  const B = opts.batchSize;
  const stepsPerEpoch = Math.ceil(n / B);
  const rand = mulberry32(opts.seed ^ 0x5eed); // trainer.js's shuffle seed: the same batches
  const order = Array.from({ length: n }, (_, i) => i);
  let stepsDone = 0;
  let pulled = null;
  const t0 = performance.now();

  for (let epoch = 1; epoch <= opts.epochs && !(opts.steps && stepsDone >= opts.steps); epoch++) {
    shuffleInPlace(order, rand);
    const e0 = performance.now();
    let lossSum = 0;
    let correct = 0;
    let seen = 0;
    for (let s = 0; s < stepsPerEpoch && !(opts.steps && stepsDone >= opts.steps); s++) {
      const from = s * B;
      const r = shareGradient(ctx, order, from, Math.min(n, from + B));
      // Sync: every worker pushes each step (zeros for an empty share), or the step never
      // closes. Async: an empty share has nothing to say.
      if (r || opts.mode === 'sync') await ps.push(gradMap);
      pulled = await ps.pull();
      if (r) {
        lossSum += r.loss * r.rows;
        correct += r.correct;
        seen += r.rows;
      }
      stepsDone++;
    }
    print(`epoch ${epoch}/${opts.epochs}  loss ${(lossSum / seen).toFixed(4)}  train acc ` +
      `${((100 * correct) / seen).toFixed(2)}% (worker 0's shares)  shard versions ` +
      `${pulled.minVersion}..${pulled.maxVersion}  time ` +
      `${((performance.now() - e0) / 1000).toFixed(1)}s`);
  }

  // Async workers finish at different times: wait for all, then pull the final weights.
  await comm.barrier();
  const seconds = (performance.now() - t0) / 1000;
  pulled = await ps.pull();
  print(`trained ${stepsDone} steps in ${seconds.toFixed(2)}s: ` +
    `${(stepsDone / seconds).toFixed(2)} steps/s, ${((stepsDone * B) / seconds).toFixed(0)} ` +
    `samples/s; final shard versions ${pulled.minVersion}..${pulled.maxVersion}`);
  if (opts.eval) {
    const acc = await trainer.evaluate({ comm, tf, params, lay }, data.test);
    print(`held-out accuracy ${(100 * acc).toFixed(2)}% on ${data.test.count} digits`);
  }
  if (opts.dumpParams) dumpParams(opts.dumpParams, comm.rank, params);
  await ps.close();
  await comm.destroy();
}

async function main() {
  const opts = parseOptions(process.argv);
  const nodeccl = require('nodeccl');
  await (nodeccl.psRole().role === 'server' ? server(nodeccl, opts) : worker(nodeccl, opts));
}

main().catch((err) => {
  process.stderr.write(`mnist-ps: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 1;
});
