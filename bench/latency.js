#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Small-message latency from JavaScript: median time per call of back-to-back tiny collectives
// at 2 ranks (started through dist/cli/run.js), and what the TypeScript wrapper alone costs.
//
//   node bench/latency.js [--np 2] [--iters 200] [--calls 20] [--runs 3] [--compare]
//                         [--overhead-only]
//
// Each iteration is a barrier, then `calls` awaited calls timed together; a row's figure is the
// median over iterations of (iteration time / calls), the slowest rank's, and the best such
// median over `runs` separate jobs (other work on a shared machine only ever adds time).
// `--compare` also runs the jobs with NODECCL_FAST_SPIN_US=0 (no JS-thread fast path: every
// call hops to the worker thread and back).
// The wrapper section drives lib/comm.ts's Communicator over a stand-in native object whose
// methods return resolved Promises, so it measures the JS side only. Not a test: no assertions
// on time, and figures on a shared machine are noisy (take the best of several runs).
'use strict';

const { spawn } = require('node:child_process');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const LAUNCHER = path.join(ROOT, 'dist', 'cli', 'run.js');

function argValue(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) {
    console.error(`latency.js: ${name} needs a positive integer, got ${process.argv[i + 1]}`);
    process.exit(2);
  }
  return v;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const fmtUs = (us) => (us < 10 ? us.toFixed(2) : us < 1000 ? us.toFixed(1) : us.toFixed(0));

// ---- the rows: what one call does, on buffers allocated once ---------------------------------

function rows(comm) {
  const n = comm.size;
  const f = (k) => new Float32Array(k).fill(comm.rank + 1);
  const small = { x: f(2), g: f(2 * n), r: f(2 * n), o: f(2) };
  const page = { x: f(1024), g: f(1024 * n), r: f(1024 * n), o: f(1024) };
  return [
    ['allReduce', '8 B', () => comm.allReduce(small.x)],
    ['allReduce', '4 KiB', () => comm.allReduce(page.x)],
    ['allGather', '8 B', () => comm.allGather(small.x, small.g)],
    ['allGather', '4 KiB', () => comm.allGather(page.x, page.g)],
    ['reduceScatter', '8 B', () => comm.reduceScatter(small.r, small.o)],
    ['reduceScatter', '4 KiB', () => comm.reduceScatter(page.r, page.o)],
    ['broadcast', '8 B', () => comm.broadcast(small.x)],
    ['broadcast', '4 KiB', () => comm.broadcast(page.x)],
    ['barrier', '0 B', () => comm.barrier()],
  ];
}

// ---- one rank (started by the launcher) -------------------------------------------------------

async function rankMain() {
  const { init } = require(ROOT);
  const comm = await init();
  const iters = argValue('--iters', 200);
  const calls = argValue('--calls', 20);
  const table = rows(comm);
  const medians = new Float64Array(table.length);
  for (let k = 0; k < table.length; k++) {
    const call = table[k][2];
    for (let i = 0; i < 20; i++) await call();  // warm-up: scratch buffers, JIT
    const per = [];
    for (let i = 0; i < iters; i++) {
      await comm.barrier();
      const t0 = process.hrtime.bigint();
      for (let c = 0; c < calls; c++) await call();
      per.push(Number(process.hrtime.bigint() - t0) / 1e3 / calls);
    }
    medians[k] = median(per);
  }
  const all = await comm.allGather(medians);
  if (comm.rank === 0) {
    const out = table.map((row, k) => {
      let worst = 0;
      for (let r = 0; r < comm.size; r++) worst = Math.max(worst, all[r * table.length + k]);
      return { coll: row[0], size: row[1], us: worst };
    });
    console.log(`RESULT ${JSON.stringify(out)}`);
  }
  await comm.destroy();
}

function runRanks(np, env) {
  return new Promise((resolve, reject) => {
    const args = [LAUNCHER, '-np', String(np), '--no-prefix', process.execPath, __filename,
      '--as-rank', ...process.argv.slice(2)];
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) reject(new Error(`latency.js: the ranks exited with ${code}`));
      else resolve(JSON.parse(line.slice(7)));
    });
  });
}

// Runs `job` (which resolves to rows) `runs` times and keeps each row's lowest time.
async function bestOf(runs, job) {
  let best = null;
  for (let i = 0; i < runs; i++) {
    const rows = await job();
    best = best ? best.map((row, k) => (rows[k].us < row.us ? rows[k] : row)) : rows;
  }
  return best;
}

// ---- the JS wrapper alone ----------------------------------------------------------------------

// A stand-in for the native communicator: every collective resolves at once.
function fakeNative() {
  const done = () => Promise.resolve();
  return {
    rank: () => 0, size: () => 2, topology: () => ({ transport: 'shm', hostOf: [0, 0] }),
    allReduce: done, broadcast: done, allGather: done, reduceScatter: done, barrier: done,
    reduce: done, abort() {}, destroy: done,
  };
}

async function timeLoop(fn, count) {
  for (let i = 0; i < count / 10; i++) await fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / 1e3 / count;
}

async function overhead() {
  const { Communicator } = require(ROOT);
  const comm = new Communicator(fakeNative(), { close() {} }, null, 300000);
  const x = new Float32Array(1024);
  const g = new Float32Array(2048);
  const count = 100000;
  const cases = [
    ['await Promise.resolve() (floor)', () => Promise.resolve()],
    ['allReduce(x)', () => comm.allReduce(x)],
    ['allReduce(x, { op: "sum" })', () => comm.allReduce(x, { op: 'sum' })],
    ['allGather(x, out)', () => comm.allGather(x, g)],
    ['reduceScatter(in, out)', () => comm.reduceScatter(g, x)],
    ['broadcast(x)', () => comm.broadcast(x)],
    ['barrier()', () => comm.barrier()],
  ];
  console.log('\nJS wrapper alone (stand-in native object, 1 process), per awaited call, best ' +
    'of 5:');
  for (const [name, fn] of cases) {
    let best = Infinity;
    for (let i = 0; i < 5; i++) best = Math.min(best, await timeLoop(fn, count));
    console.log(`  ${name.padEnd(34)} ${(best * 1000).toFixed(0).padStart(5)} ns`);
  }
}

// ---- the table ---------------------------------------------------------------------------------

async function main() {
  if (process.argv.includes('--as-rank')) return rankMain();
  if (!process.argv.includes('--overhead-only')) {
    const np = argValue('--np', 2);
    const runs = argValue('--runs', 3);
    const fast = await bestOf(runs, () => runRanks(np, {}));
    const slow = process.argv.includes('--compare')
      ? await bestOf(runs, () => runRanks(np, { NODECCL_FAST_SPIN_US: '0' })) : null;
    console.log(`Median time per call, ${np} ranks, back-to-back awaited calls (slowest rank, ` +
      `best of ${runs} runs):`);
    console.log(`| collective    | size  | time (us) |${slow ? ' no fast path (us) |' : ''}`);
    console.log(`|---------------|-------|-----------|${slow ? '-------------------|' : ''}`);
    fast.forEach((row, k) => {
      const extra = slow ? ` ${fmtUs(slow[k].us).padStart(17)} |` : '';
      console.log(`| ${row.coll.padEnd(13)} | ${row.size.padEnd(5)} | ` +
        `${fmtUs(row.us).padStart(9)} |${extra}`);
    });
  }
  await overhead();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
