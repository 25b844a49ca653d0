// SPDX-License-Identifier: Apache-2.0
// Does gradient compression pay? Trains the data-parallel MNIST MLP for the same steps with
// uncompressed, int8 and 1-bit (sign1 + error feedback) gradient all-reduces, and 1-bit Adam,
// over 2 network-namespace "hosts" joined by a link shaped to a given bandwidth (tbf), and
// prints held-out accuracy and the time spent in the gradient all-reduce for each.
//
//   sudo node examples/mnist/compress-bench.js [--mbit 1000,100] [--epochs 2] [--out file.md]
//
// Time in communication is the sum over steps of the gradient all-reduce alone: each step the
// ranks first meet at a barrier (not counted), so the skew of the two ranks' compute is not
// charged to the all-reduce; encode/decode time is counted (it is part of the compressed
// all-reduce). Needs root (network namespaces); scripts/netns.js says why when it cannot.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');

const CONFIGS = {
  none: { label: 'float32 (none)' },
  int8: { label: 'int8 + EF', compression: { codec: { kind: 'int8', blockSize: 256 } } },
  sign1: { label: '1-bit sign1 + EF', compression: { codec: { kind: 'sign1', blockSize: 256 } } },
  onebitadam: { label: '1-bit Adam', onebit: true },
};

// ---- one rank ----------------------------------------------------------------------------

async function rankMain(config, { epochs, warmup, eps }) {
  const nodeccl = require('nodeccl');
  const model = require('./model');
  const { loadSplit, mulberry32, shuffleInPlace } = require('./data');
  const { shareOf, evaluate, makeBatchBuffers, fillBatch, localGradients } = require('./trainer');
  const comm = await nodeccl.init({ timeoutMs: 120000 });
  const tf = await model.loadTf();
  const data = loadSplit();
  const lay = model.layout(128);
  const params = new Float32Array(lay.size);
  if (comm.rank === 0) model.initParams(params, lay, 1);
  await comm.broadcast(params, { root: 0 });
  const grads = new Float32Array(lay.size);
  const opt = config.onebit
    ? new nodeccl.OneBitAdam(comm, model.views(params, lay), { lr: 3e-3, eps,
      warmupSteps: warmup })
    : new nodeccl.Adam(model.views(params, lay), { lr: 3e-3, eps });
  const B = 128;
  const buf = makeBatchBuffers(Math.ceil(B / comm.size));
  const order = Array.from({ length: data.train.count }, (_, i) => i);
  const rand = mulberry32(1 ^ 0x5eed);
  let commMs = 0;
  let steps = 0;
  const t0 = performance.now();

  for (let epoch = 0; epoch < epochs; epoch++) {
    shuffleInPlace(order, rand);
    for (let from = 0; from < data.train.count; from += B) {
      // Local gradient of the rank's share, scaled so the average over ranks is the batch mean.
      const to = Math.min(data.train.count, from + B);
      const [begin, end] = shareOf(to - from, comm.rank, comm.size);
      fillBatch(buf, data.train, order, from + begin, from + end);
      localGradients(tf, params, lay, buf, end - begin, comm.size / (to - from), grads);
      await comm.barrier();

      // The all-reduce (or 1-bit Adam's step, whose time is almost all its all-reduce).
      const c0 = performance.now();
      if (config.onebit) {
        await opt.step(model.views(grads, lay));
      } else {
        await comm.allReduce(grads, { op: 'avg',
          ...(config.compression ? { compression: config.compression } : {}) });
      }
      commMs += performance.now() - c0;
      if (!config.onebit) opt.step(model.views(grads, lay));
      steps++;
    }
  }
  const totalMs = performance.now() - t0;
  const acc = await evaluate({ comm, tf, params, lay }, data.test);
  let digest = 0;
  for (const v of new Uint32Array(params.buffer)) digest = (digest * 31 + v) % 1000000007;
  console.log(JSON.stringify({ rank: comm.rank, acc, commMs, totalMs, steps, digest,
    bytesPerStep: config.compression ? new nodeccl.Codec(config.compression.codec)
      .encodedBytes(lay.size) : config.onebit ? `${4 * lay.size} (warm-up), then ` +
      new nodeccl.Codec({ kind: 'sign1', blockSize: 256 }).encodedBytes(lay.size)
      : 4 * lay.size }));
  await comm.destroy();
}

// ---- the driver --------------------------------------------------------------------------

function runRank(hosts, i, port, name, args) {
  const argv = ['env', `RANK=${i}`, 'WORLD_SIZE=2', `LOCAL_RANK=0`, `MASTER_ADDR=${hosts.addrs[0]}`,
    `MASTER_PORT=${port}`, 'NODECCL_SOCKET_IFNAME=eth0', process.execPath, __filename,
    '--rank-config', name, '--epochs', String(args.epochs), '--warmup', String(args.warmup),
    '--eps', String(args.eps)];
  return new Promise((resolve) => {
    const child = spawn(hosts.exec(i, argv)[0], hosts.exec(i, argv).slice(1),
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('close', (code) => {
      const line = out.trim().split('\n').reverse().find((l) => l.startsWith('{'));
      if (code !== 0 || !line) resolve({ error: `rank ${i} exit ${code}: ${err.slice(-2000)}` });
      else resolve(JSON.parse(line));
    });
  });
}

function parseArgs(argv) {
  const get = (name, def) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : def;
  };
  return { mbits: get('--mbit', '1000,100').split(',').map(Number),
           epochs: Number(get('--epochs', '2')),
           warmup: Number(get('--warmup', '20')),
           eps: Number(get('--eps', '1e-8')),
           configs: get('--configs', Object.keys(CONFIGS).join(',')).split(','),
           out: get('--out', path.join(__dirname, '..', '..', 'bench', 'results',
             'compression-mnist.md')),
           rankConfig: get('--rank-config', null) };
}

async function driver(args) {
  const { makeHosts } = require('../../scripts/netns');
  const hosts = makeHosts(2, 'cb');
  if (typeof hosts === 'string') throw new Error(`compress-bench: ${hosts}`);
  const rows = [];
  try {
    for (const mbit of args.mbits) {
      hosts.limit(0, mbit);
      hosts.limit(1, mbit);
      for (const name of args.configs) {
        const port = 20000 + Math.floor(Math.random() * 20000);
        const res = await Promise.all([0, 1].map((i) => runRank(hosts, i, port, name, args)));
        const bad = res.find((r) => r.error);
        if (bad) throw new Error(bad.error);
        const same = res[0].digest === res[1].digest;
        rows.push({ mbit, name, ...res[0], same });
        const [acc, comm, total] = [100 * res[0].acc, res[0].commMs / 1000, res[0].totalMs / 1000];
        console.log(`${mbit} Mbit/s ${CONFIGS[name].label}: acc ${acc.toFixed(2)}% ` +
          `comm ${comm.toFixed(2)}s total ${total.toFixed(1)}s`);
      }
    }
  } finally {
    hosts.remove();
  }
  return rows;
}

function table(rows, args) {
  const lines = ['| link | gradient all-reduce | bytes/step/rank sent (encoded) | ' +
    'held-out acc | comm time (s) | comm vs none | total train time (s) | params identical |',
    '|---|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const base = rows.find((x) => x.mbit === r.mbit && x.name === 'none');
    const ratio = base ? `${(base.commMs / r.commMs).toFixed(1)}x less` : '-';
    lines.push(`| ${r.mbit} Mbit/s | ${CONFIGS[r.name].label} | ${r.bytesPerStep} | ` +
      `${(100 * r.acc).toFixed(2)}% | ${(r.commMs / 1000).toFixed(2)} | ` +
      `${r.name === 'none' ? '1x' : ratio} | ${(r.totalMs / 1000).toFixed(1)} | ${r.same} |`);
  }
  return `# MNIST data-parallel with gradient compression\n\n` +
    `2 network-namespace hosts x 1 rank, tbf-shaped veth links, MLP 784-128-10 ` +
    `(${rows[0] ? rows[0].bytesPerStep : '?'} B float32 gradients), Adam lr 3e-3 eps ` +
    `${args.eps} (1-bit Adam: warm-up ${args.warmup} steps), global ` +
    `batch 128, ${args.epochs} epochs (${rows[0] ? rows[0].steps : '?'} steps), 8,000 train / ` +
    `2,000 held-out digits. Command: \`node examples/mnist/compress-bench.js ` +
    `--mbit ${args.mbits.join(',')} --epochs ${args.epochs} --warmup ${args.warmup} --eps ` +
    `${args.eps}\`. Comm time is the gradient all-reduce alone (ranks meet at an uncounted ` +
    `barrier first), encode/decode included; this 2-core machine is shared, so times vary ` +
    `by ~2x between runs.\n\n${lines.join('\n')}\n`;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.rankConfig) {
    const config = CONFIGS[args.rankConfig];
    if (!config) throw new Error(`compress-bench: unknown config ${args.rankConfig}`);
    return rankMain(config, args);
  }
  const rows = await driver(args);
  const md = table(rows, args);
  fs.mkdirSync(path.dirname(args.out), { recursive: true });
  fs.writeFileSync(args.out, md);
  process.stdout.write(`\n${md}\nwritten to ${args.out}\n`);
}

main().catch((e) => {
  process.stderr.write(`${e && e.stack ? e.stack : e}\n`);
  process.exitCode = 1;
});
