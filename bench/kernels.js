// SPDX-License-Identifier: Apache-2.0
// Benchmark of the native kernels on one thread: fused optimizers (16M parameters in one
// tensor, and 100 x 160k), 8-bit Adam's state size, and every codec's encode/decode, each
// checked for sanity first, then timed (median of several runs, or the best with STAT=best: on a
// shared machine the best shows what the kernel can do, the median what it did), beside this
// machine's measured streaming bandwidth and PyTorch/numpy doing the same work in the same run.
// Usage: npm run bench:kernels
//   (env: REPS=5, STAT=median|best, NO_PEERS=1 to skip torch/numpy, OUT=file.md)
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const nodeccl = require('..');

const REPS = Number(process.env.REPS || 5);
const STAT = process.env.STAT || 'median';
if (STAT !== 'median' && STAT !== 'best') {
  throw new Error(`STAT must be median or best, got ${STAT}`);
}
const CONFIGS = { '16M x 1': [16 << 20], '160k x 100': Array(100).fill(160 * 1024) };
const CODEC_N = 16 << 20;

// Seconds per call of fn after a warm-up call: the median (or the best, STAT=best) of REPS runs.
function median(fn, reps = REPS) {
  fn();
  const t = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  t.sort((a, b) => a - b);
  return STAT === 'best' ? t[0] : t[Math.floor(t.length / 2)];
}

// Streaming bandwidth of one core: a 256 MiB copy (memcpy: read + write).
function streamBandwidth() {
  const n = 64 << 20;
  const a = new Float32Array(n).fill(1);
  const b = new Float32Array(n);
  const s = median(() => b.set(a));
  return (2 * 4 * n) / s / 1e9;
}

function randn(n) {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 12.9898) * 43758.5453 % 1;
  return x;
}

// Bytes of memory traffic per parameter of each optimizer's step (reads + writes).
const OPTIMIZERS = {
  sgd: { make: (p) => new nodeccl.SGD(p, { lr: 1e-3, momentum: 0.9 }), bytes: 20 },
  rmsprop: { make: (p) => new nodeccl.RMSprop(p, { lr: 1e-3 }), bytes: 20 },
  adam: { make: (p) => new nodeccl.Adam(p, { lr: 1e-3 }), bytes: 28 },
  adamw: { make: (p) => new nodeccl.AdamW(p, { lr: 1e-3 }), bytes: 28 },
  lion: { make: (p) => new nodeccl.Lion(p, { lr: 1e-4 }), bytes: 20 },
  lamb: { make: (p) => new nodeccl.LAMB(p, { lr: 1e-3 }), bytes: 40 },
  adam8bit: { make: (p) => new nodeccl.Adam8bit(p, { lr: 1e-3 }), bytes: 14 },
};

function benchOptimizers(bw) {
  const rows = [];
  for (const [label, shapes] of Object.entries(CONFIGS)) {
    const params = shapes.map((n) => new Float32Array(n));
    const grads = shapes.map((n) => randn(n));
    const total = shapes.reduce((a, n) => a + n, 0);
    for (const [name, o] of Object.entries(OPTIMIZERS)) {
      const opt = o.make(params);
      opt.step(grads);
      if (!params.every((p) => Number.isFinite(p[0]))) throw new Error(`${name}: non-finite`);
      const s = median(() => opt.step(grads));
      const gbs = (o.bytes * total) / s / 1e9;
      rows.push({ config: label, name, s, mps: total / s / 1e6, gbs, pctBw: (100 * gbs) / bw });
    }
  }
  return rows;
}

// Each codec on CODEC_N elements; M elements per second, encode and decode.
function benchCodecs() {
  const x = randn(CODEC_N);
  const y = new Float32Array(CODEC_N);
  const specs = [
    'float16', 'bfloat16', { kind: 'int8', blockSize: 0 }, { kind: 'int8', blockSize: 256 },
    { kind: 'int4', blockSize: 64 }, 'sign1', { kind: 'topk', ratio: 0.01 },
    { kind: 'randomk', ratio: 0.01 },
  ];
  const rows = [];
  for (const spec of specs) {
    const c = new nodeccl.Codec(spec);
    const bytes = c.encode(x);
    c.decode(bytes, y);
    const label = typeof spec === 'string' ? spec : `${spec.kind}${spec.blockSize !== undefined
      ? ` block ${spec.blockSize || 'tensor'}` : ` ${spec.ratio}`}`;
    const enc = median(() => c.encode(x, bytes));
    const dec = median(() => c.decode(bytes, y));
    rows.push({ label, ratio: (4 * CODEC_N) / bytes.length, enc: CODEC_N / enc / 1e6,
                dec: CODEC_N / dec / 1e6 });
  }
  return rows;
}

function peers() {
  if (process.env.NO_PEERS) return null;
  const cfg = { optim: CONFIGS, reps: REPS, codecN: CODEC_N, stat: STAT };
  try {
    const out = execFileSync('/usr/bin/python3',
      [path.join(__dirname, 'peers', 'kernels_torch.py'), JSON.stringify(cfg)],
      { encoding: 'utf8', maxBuffer: 1 << 24 });
    return JSON.parse(out.trim().split('\n').pop());
  } catch (e) {
    console.error(`peers skipped (apt-get install -y python3-torch python3-numpy): ${e.message}`);
    return null;
  }
}

function main() {
  const lines = [];
  const say = (s) => { console.log(s); lines.push(s); };
  // The machine's streaming bandwidth: the best of a JS copy and numpy's streaming loops.
  const p = peers();
  const streams = { 'JS TypedArray.set copy': streamBandwidth(), ...(p ? p.stream : {}) };
  const bw = Math.max(...Object.values(streams));
  say(`# nodeccl kernels, one thread (isa ${nodeccl.kernelIsa()}, node ${process.version}, ` +
      `${STAT} of ${REPS} runs)`);
  say('\nStreaming bandwidth, 256 MiB arrays (bytes read + written, per second): ' +
      Object.entries(streams).map(([k, v]) => `${k} ${v.toFixed(1)} GB/s`).join(', ') +
      `; reference: ${bw.toFixed(1)} GB/s\n`);

  const opt = benchOptimizers(bw);
  say('| params | optimizer | ms/step | M params/s | GB/s | % of stream | torch M/s | x torch |');
  say('|---|---|---|---|---|---|---|---|');
  for (const r of opt) {
    const total = CONFIGS[r.config].reduce((a, n) => a + n, 0);
    const ts = p && p.optim[r.config] && p.optim[r.config][r.name];
    const tm = ts ? total / ts / 1e6 : null;
    say(`| ${r.config} | ${r.name} | ${(r.s * 1e3).toFixed(1)} | ${r.mps.toFixed(0)} | ` +
        `${r.gbs.toFixed(1)} | ${r.pctBw.toFixed(0)}% | ${tm ? tm.toFixed(0) : '-'} | ` +
        `${tm ? (r.mps / tm).toFixed(1) : '-'} |`);
  }

  const a8 = new nodeccl.Adam8bit([new Float32Array(16 << 20)]).stateBytes();
  say(`\n8-bit Adam state for 16M parameters: ${(a8.bytes / 2 ** 20).toFixed(1)} MiB vs ` +
      `${(a8.bytes32bit / 2 ** 20).toFixed(1)} MiB in 32 bits (${(a8.bytes32bit / a8.bytes)
        .toFixed(2)}x smaller)\n`);

  say(`| codec (${CODEC_N / 2 ** 20}M elements) | compression | encode M/s | decode M/s |`);
  say('|---|---|---|---|');
  for (const r of benchCodecs()) {
    say(`| ${r.label} | ${r.ratio.toFixed(1)}x | ${r.enc.toFixed(0)} | ${r.dec.toFixed(0)} |`);
  }
  if (p) {
    say(`\nPeers in the same run (torch ${p.torch}, numpy ${p.numpy}, one thread), M elements/s:`);
    say('\n| peer | M/s |\n|---|---|');
    for (const [k, s] of Object.entries(p.codec)) {
      say(`| ${k} | ${(CODEC_N / s / 1e6).toFixed(0)} |`);
    }
  }
  if (process.env.OUT) fs.writeFileSync(process.env.OUT, lines.join('\n') + '\n');
}

main();
