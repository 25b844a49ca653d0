// SPDX-License-Identifier: Apache-2.0
// Command-line entry for data-parallel MNIST training with nodeccl; run one copy per rank
// through the launcher: `node dist/cli/run.js -np 4 node examples/mnist/train.js`.
'use strict';

const fs = require('node:fs');
const { Command, InvalidArgumentError, Option } = require('commander');
const { train, evaluate } = require('./trainer');

/** Parses a positive integer option or explains which value was wrong. */
function positiveInt(name) {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      throw new InvalidArgumentError(`${name} must be a positive integer, got "${value}"`);
    }
    return n;
  };
}

function positiveNumber(value) {
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError(`must be a positive number, got "${value}"`);
  return n;
}

function nonNegativeNumber(value) {
  const n = Number(value);
  if (!(n >= 0)) throw new InvalidArgumentError(`must be a number >= 0, got "${value}"`);
  return n;
}

function parseOptions(argv) {
  const program = new Command('mnist-train')
    .description('Data-parallel MLP training on the mnist package digits (8,000 train / ' +
      '2,000 held out).')
    .option('--epochs <n>', 'passes over the training set', positiveInt('--epochs'), 5)
    .option('--batch-size <n>', 'global batch, split across ranks', positiveInt('--batch-size'),
      128)
    .option('--lr <x>', 'learning rate', positiveNumber, 3e-3)
    .addOption(new Option('--optimizer <name>', 'optimizer').choices(['adam', 'sgd'])
      .default('adam'))
    .option('--momentum <x>', 'SGD momentum', nonNegativeNumber, 0)
    .option('--seed <n>', 'seed for the initial weights and the shuffles', positiveInt('--seed'),
      1)
    .option('--hidden <n>', 'hidden units', positiveInt('--hidden'), 128)
    .addOption(new Option('--mode <mode>', 'how gradients are combined: one all-reduce per ' +
      'step, DataParallel buckets, ZeRO-1 sharded optimizer, or local SGD (periodic weight ' +
      'averaging)').choices(['allreduce', 'dp', 'zero', 'local-sgd']).default('allreduce'))
    .option('--bucket-mb <x>', 'DataParallel bucket size in MiB (--mode dp)', positiveNumber, 25)
    .option('--local-steps <n>', 'local steps between weight averagings (--mode local-sgd)',
      positiveInt('--local-steps'), 8)
    .option('--eval-every <n>', 'also print held-out accuracy every n steps (with the training ' +
      'time so far, evaluation excluded)', positiveInt('--eval-every'))
    .option('--steps <n>', 'stop after this many steps in all (for tests)', positiveInt('--steps'))
    .option('--dump-params <file>', 'write the final parameters (raw float32); "{rank}" in the ' +
      'name is replaced by the rank, otherwise only rank 0 writes')
    .option('--no-eval', 'skip the held-out evaluation')
    .showHelpAfterError();
  program.parse(argv);
  const opts = program.opts();
  if (opts.mode === 'local-sgd' && opts.evalEvery && opts.evalEvery % opts.localSteps !== 0) {
    program.error(`--eval-every (${opts.evalEvery}) must be a multiple of --local-steps ` +
      `(${opts.localSteps}) with --mode local-sgd: between averagings the ranks' weights differ`);
  }
  return opts;
}

/**
 * Progress on rank 0 only: a bar when stdout is a terminal, otherwise one line per epoch
 * (the launcher pipes each rank's output, so under nodeccl-run this prints lines).
 */
function makeReporter(rank, opts) {
  if (rank !== 0) return {};
  const print = (s) => process.stdout.write(`${s}\n`);
  const line = (e) => `epoch ${e.epoch}/${opts.epochs}  loss ${e.loss.toFixed(4)}  ` +
    `train acc ${(100 * e.acc).toFixed(2)}%  time ${e.seconds.toFixed(1)}s`;
  if (!process.stdout.isTTY) return { print, onEpochEnd: (e) => print(line(e)) };

  const cliProgress = require('cli-progress');
  const bar = new cliProgress.SingleBar({
    stream: process.stdout,
    format: 'epoch {epoch} [{bar}] {value}/{total} steps | loss {loss} | acc {acc}% | {duration}s',
    hideCursor: true,
  }, cliProgress.Presets.shades_classic);
  return {
    print,
    onEpochStart: (epoch, total) => bar.start(total, 0, { epoch, loss: '-', acc: '-' }),
    onStep: (step, s) => bar.update(step, {
      loss: s.loss.toFixed(4), acc: (100 * s.acc).toFixed(2) }),
    onEpochEnd: (e) => { bar.stop(); print(line(e)); },
  };
}

/**
 * With --eval-every, scores the held-out set every n steps and prints the accuracy against the
 * step count and the training time so far (time spent evaluating is left out).
 */
function addPeriodicEval(report, opts) {
  if (!opts.evalEvery) return;
  let evalMs = 0;
  const t0 = performance.now();
  report.onGlobalStep = async (step, ctx) => {
    if (step % opts.evalEvery !== 0) return;
    const e0 = performance.now();
    const acc = await evaluate(ctx, ctx.data.test);
    const trainSeconds = (e0 - t0 - evalMs) / 1000;
    evalMs += performance.now() - e0;
    if (report.print) {
      report.print(`eval step ${step}  held-out acc ${(100 * acc).toFixed(2)}%  ` +
        `train time ${trainSeconds.toFixed(2)}s`);
    }
  };
}

/** Writes the flat parameter buffer, as raw little-endian float32, for tests to compare. */
function dumpParams(template, rank, params) {
  const file = template.includes('{rank}') ? template.replaceAll('{rank}', String(rank))
    : rank === 0 ? template : null;
  if (file) {
    fs.writeFileSync(file, Buffer.from(params.buffer, params.byteOffset, params.byteLength));
  }
}

async function main() {
  const opts = parseOptions(process.argv);
  const t0 = performance.now();
  const nodeccl = require('nodeccl');
  const comm = await nodeccl.init();
  const report = makeReporter(comm.rank, opts);
  if (report.print) {
    report.print(`mnist: ${comm.size} rank(s), global batch ${opts.batchSize}, ` +
      `${opts.optimizer} lr ${opts.lr}, hidden ${opts.hidden}, ${opts.epochs} epoch(s), ` +
      `seed ${opts.seed}, mode ${opts.mode}` +
      (opts.mode === 'local-sgd' ? ` (average every ${opts.localSteps} steps)` : ''));
  }
  addPeriodicEval(report, opts);

  const { ctx } = await train(comm, nodeccl, opts, report);
  if (opts.mode === 'zero' && report.print) {
    // Measured from state dicts: this rank's shard against an unsharded optimizer's buffers.
    const full = nodeccl.optimizerStateBytes(new nodeccl.Adam([new Float32Array(ctx.lay.size)]));
    const mine = ctx.opt.stateBytes();
    report.print(`zero: optimizer state on rank 0 ${mine} bytes, unsharded ${full} bytes ` +
      `(${(full / mine).toFixed(2)}x less over ${comm.size} ranks)`);
  }
  if (opts.eval) {
    const acc = await evaluate(ctx, ctx.data.test);
    if (report.print) {
      report.print(`held-out accuracy ${(100 * acc).toFixed(2)}% on ${ctx.data.test.count} ` +
        `digits; total ${((performance.now() - t0) / 1000).toFixed(1)}s`);
    }
  }
  if (opts.dumpParams) dumpParams(opts.dumpParams, comm.rank, ctx.params);
  await comm.destroy();
}

main().catch((err) => {
  process.stderr.write(`mnist: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 1;
});
