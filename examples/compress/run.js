// SPDX-License-Identifier: Apache-2.0
// Compresses the MNIST MLP with nodeccl and prints, for each form, its size on disk and its
// held-out accuracy: the float32 teacher; int8 and int4 exports; 4-bit weight sharing; pruning
// to 90% with masked fine-tuning, alone and with 4-bit sharing; and a smaller student, trained
// on the labels alone and distilled from the teacher. Every row is scored from the file it
// wrote, loaded back through the checksummed loader. Run: node examples/compress/run.js --help
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Command, InvalidArgumentError } = require('commander');
const { CLASSES } = require('../mnist/data');
const model = require('../mnist/model');
const { train } = require('../mnist/trainer');
const { trainLoop, logitsOfSet, accuracy, recordsOf, paramsOf } = require('./steps');

function parsed(name, test, what) {
  return (value) => {
    const n = Number(value);
    if (!test(n)) throw new InvalidArgumentError(`${name} must be ${what}, got "${value}"`);
    return n;
  };
}
const int = (name) => parsed(name, (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
const pos = (name) => parsed(name, (n) => n > 0, 'a positive number');
const unit = (name) => parsed(name, (n) => n >= 0 && n <= 1, 'a number in [0, 1]');

function parseOptions(argv) {
  return new Command('compress-mnist')
    .description('Train, prune, share, quantize and distill the MNIST MLP; print a size and ' +
      'accuracy table (8,000 training / 2,000 held-out digits).')
    .option('--epochs <n>', 'teacher training epochs', int('--epochs'), 5)
    .option('--hidden <n>', 'teacher hidden units', int('--hidden'), 128)
    .option('--sparsity <x>', 'final fraction of pruned weights', unit('--sparsity'), 0.9)
    .option('--prune-stages <n>', 'pruning stages (sparsity rises geometrically to the target), ' +
      'each followed by fine-tuning', int('--prune-stages'), 3)
    .option('--finetune-epochs <n>', 'fine-tuning epochs after each pruning stage',
      int('--finetune-epochs'), 1)
    .option('--bits <n>', 'bits of the shared weights (2..8)', int('--bits'), 4)
    .option('--student-hidden <n>', 'student hidden units', int('--student-hidden'), 32)
    .option('--student-epochs <n>', 'student training epochs', int('--student-epochs'), 5)
    .option('--temperature <x>', 'distillation temperature', pos('--temperature'), 2)
    .option('--alpha <x>', 'weight of the teacher term in distillation', unit('--alpha'), 0.5)
    .option('--lr <x>', 'Adam learning rate (teacher and student)', pos('--lr'), 3e-3)
    .option('--finetune-lr <x>', 'Adam learning rate of the fine-tuning', pos('--finetune-lr'),
      1e-3)
    .option('--seed <n>', 'seed of the weights, shuffles and k-means', int('--seed'), 1)
    .option('--out-dir <dir>', 'where the model files go (default: a fresh temporary folder, ' +
      'removed at the end unless --keep)')
    .option('--keep', 'keep the model files')
    .showHelpAfterError()
    .parse(argv)
    .opts();
}

/** The model of one row saved, loaded back and scored: { bytes, acc }. */
async function scoreFile(env, file, records, lay) {
  const { nodeccl, comm, tf, data } = env;
  nodeccl.saveCompressedModel(file, { tensors: records, metadata: { hidden: lay.hidden } });
  const loaded = nodeccl.loadCompressedModel(file);
  const params = paramsOf(nodeccl, loaded, lay);
  return { bytes: fs.statSync(file).size, acc: await accuracy(comm, tf, params, lay, data.test) };
}

/** Fraction of zeros among the weight matrices W1 and W2. */
function weightSparsity(params, lay) {
  const [w1, , w2] = model.views(params, lay);
  let z = 0;
  for (const w of [w1, w2]) for (let i = 0; i < w.length; i++) z += w[i] === 0 ? 1 : 0;
  return z / (w1.length + w2.length);
}

/** Prunes in stages to opts.sparsity, fine-tuning with the mask after each; returns params. */
function pruneAndFineTune(env, teacher, lay, opts, log) {
  const { nodeccl, tf, data } = env;
  const params = teacher.slice();
  const [w1, , w2] = model.views(params, lay);
  const hard = (logits, batch) => nodeccl.distillationLoss(logits, logits,
    Int32Array.from(batch, (i) => data.train.labels[i]), { classes: CLASSES, alpha: 0 });
  for (let s = 1; s <= opts.pruneStages; s++) {
    // Sparsity 1 - (1 - target)^(s / stages): each stage removes the same share of survivors.
    const sparsity = 1 - (1 - opts.sparsity) ** (s / opts.pruneStages);
    const mask = nodeccl.magnitudePrune([w1, w2], { sparsity, scope: 'global' });
    const step = (opt, views, grads) => {
      mask.apply([grads[0], grads[2]]);
      opt.step(grads);
      mask.apply([views[0], views[2]]);
    };
    const loss = trainLoop(nodeccl, tf, params, lay, data.train, { epochs: opts.finetuneEpochs,
      batchSize: 128, lr: opts.finetuneLr, seed: opts.seed + s }, hard, step);
    log(`  pruned to ${(100 * sparsity).toFixed(1)}%, fine-tuned: loss ${loss.toFixed(4)}`);
  }
  return params;
}

/** A student of opts.studentHidden units trained with the native distillation loss. */
function trainStudent(env, teacherLogits, opts, alpha) {
  const { nodeccl, tf, data } = env;
  const lay = model.layout(opts.studentHidden);
  const params = new Float32Array(lay.size);
  model.initParams(params, lay, opts.seed + 7);
  const t = new Float32Array(128 * CLASSES);
  const lossOf = (logits, batch) => {
    for (let r = 0; r < batch.length; r++) {
      t.set(teacherLogits.subarray(batch[r] * CLASSES, (batch[r] + 1) * CLASSES), r * CLASSES);
    }
    return nodeccl.distillationLoss(logits, t.subarray(0, batch.length * CLASSES),
      Int32Array.from(batch, (i) => data.train.labels[i]),
      { classes: CLASSES, temperature: opts.temperature, alpha });
  };
  trainLoop(nodeccl, tf, params, lay, data.train, { epochs: opts.studentEpochs, batchSize: 128,
    lr: opts.lr, seed: opts.seed + 11 }, lossOf);
  return { params, lay };
}

function printTable(rows, log) {
  const dense = rows[0].bytes;
  const head = ['model', 'hidden', 'weights stored as', 'sparsity', 'bytes on disk', 'compression',
    'held-out acc'];
  const body = rows.map((r) => [r.name, String(r.hidden), r.form,
    `${(100 * r.sparsity).toFixed(1)}%`, r.bytes.toLocaleString('en-US'),
    `${(dense / r.bytes).toFixed(1)}x`, `${(100 * r.acc).toFixed(2)}%`]);
  const widths = head.map((h, c) => Math.max(h.length, ...body.map((b) => b[c].length)));
  const line = (cells) => `| ${cells.map((x, c) => x.padEnd(widths[c])).join(' | ')} |`;
  log(line(head));
  log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const b of body) log(line(b));
}

async function main() {
  const opts = parseOptions(process.argv);
  const log = (s) => process.stdout.write(`${s}\n`);
  const t0 = performance.now();
  const seconds = () => `${((performance.now() - t0) / 1000).toFixed(1)}s`;
  const nodeccl = require('nodeccl');
  const comm = await nodeccl.init({ rank: 0, worldSize: 1 });
  const dir = opts.outDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-compress-'));
  fs.mkdirSync(dir, { recursive: true });

  // 1. The teacher: examples/mnist's data-parallel trainer, here on a world of one.
  log(`training the teacher (784-${opts.hidden}-10, ${opts.epochs} epochs)...`);
  const { ctx } = await train(comm, nodeccl, { epochs: opts.epochs, batchSize: 128, lr: opts.lr,
    optimizer: 'adam', seed: opts.seed, hidden: opts.hidden });
  const env = { nodeccl, comm, tf: ctx.tf, data: ctx.data };
  const lay = ctx.lay;
  const teacher = ctx.params;
  const rows = [];
  const add = async (name, form, params, layout, encodeWeight) => {
    const file = path.join(dir, `${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.nccz`);
    const r = await scoreFile(env, file, recordsOf(nodeccl, params, layout, encodeWeight), layout);
    rows.push({ name, form, hidden: layout.hidden, sparsity: weightSparsity(params, layout),
      ...r });
    log(`  ${name}: ${r.bytes} bytes, ${(100 * r.acc).toFixed(2)}% (${seconds()})`);
  };
  const dense = (w, shape) => nodeccl.toDense(w, shape);
  const shared = (w, shape) => nodeccl.shareWeights(w, { bits: opts.bits, shape,
    seed: opts.seed }).tensor;

  // 2. Exports of the teacher: float32, int8 per output channel, int4 per block, shared.
  await add('teacher', 'float32', teacher, lay, dense);
  await add('teacher int8', 'int8, scale per channel', teacher, lay,
    (w, shape) => nodeccl.quantizeWeights(w, { bits: 8, shape, axis: 1 }));
  await add('teacher int4', 'int4, scale per 32', teacher, lay,
    (w, shape) => nodeccl.quantizeWeights(w, { bits: 4, shape, scheme: 'block', blockSize: 32 }));
  await add(`teacher shared ${opts.bits}-bit`, `k-means ${2 ** opts.bits} values`, teacher, lay,
    shared);

  // 3. Pruning with fine-tuning, stored sparse; then the same weights shared (Deep Compression).
  log(`pruning to ${100 * opts.sparsity}% in ${opts.pruneStages} stage(s)...`);
  const pruned = pruneAndFineTune(env, teacher, lay, opts, log);
  await add('pruned', 'bitmap + float32', pruned, lay, (w, shape) => nodeccl.toSparse(w, shape));
  await add(`pruned + shared ${opts.bits}-bit`, `bitmap + ${opts.bits}-bit codes`, pruned, lay,
    shared);

  // 4. Students: labels only, and distilled from the teacher's logits (alpha, temperature).
  log(`training students (784-${opts.studentHidden}-10, ${opts.studentEpochs} epochs)...`);
  const teacherLogits = logitsOfSet(env.tf, teacher, lay, env.data.train);
  const plain = trainStudent(env, teacherLogits, opts, 0);
  await add('student, labels only', 'float32', plain.params, plain.lay, dense);
  const student = trainStudent(env, teacherLogits, opts, opts.alpha);
  await add(`student, distilled T=${opts.temperature}`, 'float32', student.params, student.lay,
    dense);
  await add('student, distilled, int8', 'int8, scale per channel', student.params, student.lay,
    (w, shape) => nodeccl.quantizeWeights(w, { bits: 8, shape, axis: 1 }));

  log('');
  printTable(rows, log);
  log(`\n${env.data.test.count} held-out digits; files in ${dir}` +
    `${opts.keep || opts.outDir ? '' : ' (removed)'}; total ${seconds()}`);
  if (!opts.keep && !opts.outDir) fs.rmSync(dir, { recursive: true, force: true });
  await comm.destroy();
}

main().catch((err) => {
  process.stderr.write(`compress: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 1;
});
