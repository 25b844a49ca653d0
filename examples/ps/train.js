// SPDX-License-Identifier: Apache-2.0
// Parameter-server training of a softmax classifier on synthetic data (10 classes, 32
// features, clusters around fixed centres), with the servers running Adam:
//   node dist/cli/run.js --servers 2 -np 2 node examples/ps/train.js [--mode sync|async]
//       [--staleness K] [--steps 200] [--checkpoint /tmp/ps]
// Each worker draws its own batches; worker 0 prints the held-out accuracy at the end.
const { Adam, psRole, PSServer, PSWorker } = require('nodeccl');

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : args[i + 1];
};
const MODE = opt('mode', 'sync');
const STEPS = Number(opt('steps', 200));
const CLASSES = 10;
const FEATURES = 32;
const BATCH = 64;

// A small deterministic generator (mulberry32), so every run draws the same data.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const centreRng = rng(7);
const CENTRES = Array.from({ length: CLASSES }, () =>
  Float32Array.from({ length: FEATURES }, () => centreRng() * 2 - 1));

function sample(r) {
  const y = Math.floor(r() * CLASSES);
  const x = CENTRES[y].map((c) => c + (r() - 0.5) * 4);
  return { x, y };
}

// Softmax regression: logits = W x + b; the gradient of the mean cross-entropy over a batch.
function logits(p, x) {
  const z = new Float64Array(CLASSES);
  for (let k = 0; k < CLASSES; k++) {
    let s = p.b[k];
    for (let j = 0; j < FEATURES; j++) s += p.W[k * FEATURES + j] * x[j];
    z[k] = s;
  }
  return z;
}

function gradient(p, batch) {
  const g = { W: new Float32Array(p.W.length), b: new Float32Array(CLASSES) };
  for (const { x, y } of batch) {
    const z = logits(p, x);
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const sum = e.reduce((a, v) => a + v, 0);
    for (let k = 0; k < CLASSES; k++) {
      const d = (e[k] / sum - (k === y ? 1 : 0)) / batch.length;
      g.b[k] += d;
      for (let j = 0; j < FEATURES; j++) g.W[k * FEATURES + j] += d * x[j];
    }
  }
  return g;
}

async function server() {
  const k = opt('staleness', undefined);
  const dir = opt('checkpoint', undefined);
  const srv = await PSServer.start({
    mode: MODE, staleness: k === undefined ? undefined : Number(k),
    optimizer: (params) => new Adam(params, { lr: 0.02 }),
    checkpoint: dir && `${dir}-server${psRole().serverRank}.ckpt`, checkpointEvery: 50,
  });
  const summary = await srv.finished;
  console.log(`server ${summary.serverRank}: ${summary.version} updates applied`);
}

async function worker() {
  const params = { W: new Float32Array(CLASSES * FEATURES), b: new Float32Array(CLASSES) };
  const w = await PSWorker.connect({ params });
  const r = rng(1000 + w.rank);
  await w.pull(); // the servers' values (a restored checkpoint's, if any)
  const t0 = Date.now();
  for (let step = 0; step < STEPS; step++) {
    const batch = Array.from({ length: BATCH }, () => sample(r));
    await w.push(gradient(params, batch));
    const pulled = await w.pull();
    if (w.rank === 0 && step % 50 === 0) {
      console.log(`step ${step}: shard versions ${pulled.minVersion}..${pulled.maxVersion}`);
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  if (w.rank === 0) {
    const test = rng(99);
    let right = 0;
    for (let i = 0; i < 2000; i++) {
      const { x, y } = sample(test);
      const z = logits(params, x);
      if (z.indexOf(Math.max(...z)) === y) right++;
    }
    console.log(`${MODE} mode: ${(STEPS / seconds).toFixed(1)} steps/s, held-out accuracy ` +
      `${((100 * right) / 2000).toFixed(1)}%`);
  }
  await w.close();
}

(psRole().role === 'server' ? server() : worker()).catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
