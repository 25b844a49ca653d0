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
    .option('--steps <n>', 'stop after this many steps in all (for tests)', positiveInt('--steps'))
    .option('--dump-params <file>', 'write the final parameters (raw float32); "{rank}" in the ' +
      'name is replaced by the rank, otherwise only rank 0 writes')
    .option('--no-eval', 'skip the held-out evaluation')
    .showHelpAfterError();
  program.parse(argv);
  return program.opts();
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
      `seed ${opts.seed}`);
  }

  const { ctx } = await train(comm, nodeccl, opts, report);
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
