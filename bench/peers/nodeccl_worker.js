// SPDX-License-Identifier: Apache-2.0
// One nodeccl rank of the collectives bench, started by bench/collectives.js through the
// launcher (nodeccl-run -np N). For each collective and size: fill a known pattern, run once
// and count wrong elements, warm up, then time iterations; rank 0 prints one RESULT line each.
// NODECCL_BENCH_SHARED=1: the buffers come from comm.allocShared (read in place by the peers).
'use strict';

const { parsePlan, blockCount, itersFor, warmupFor, median } = require('./plan');

// Patterns (as in torch_gloo.py and mpi_bench.c), with p(i) = i % 13 + 1 and tri = n(n+1)/2:
//   allreduce      in[i] = (r+1) p(i)           -> tri p(i)
//   broadcast      root: p(i), others: 0        -> p(i)
//   allgather      in[i] = (r+1) p(i)           -> out[k c + i] = (k+1) p(i)
//   reducescatter  in[j] = (r+1) p(j), j < n c  -> out[i] = tri p(r c + i)
// Small integers, exact in float32 whatever the order of the additions.
const p = (i) => (i % 13) + 1;

function fill(coll, bufs, r) {
  const { a } = bufs;
  if (coll === 'broadcast') for (let i = 0; i < a.length; i++) a[i] = r === 0 ? p(i) : 0;
  else for (let i = 0; i < a.length; i++) a[i] = (r + 1) * p(i);
}

function countWrong(coll, bufs, r, n, c) {
  const tri = (n * (n + 1)) / 2;
  let wrong = 0;
  if (coll === 'allreduce') for (let i = 0; i < c; i++) wrong += bufs.a[i] !== tri * p(i);
  if (coll === 'broadcast') for (let i = 0; i < c; i++) wrong += bufs.a[i] !== p(i);
  if (coll === 'allgather') {
    for (let k = 0; k < n; k++) {
      for (let i = 0; i < c; i++) wrong += bufs.b[k * c + i] !== (k + 1) * p(i);
    }
  }
  if (coll === 'reducescatter') {
    for (let i = 0; i < c; i++) wrong += bufs.b[i] !== tri * p(r * c + i);
  }
  return wrong;
}

/** The operation on views of the preallocated buffers (no allocation per call). */
function opFor(comm, coll, bufs) {
  switch (coll) {
    case 'allreduce': return () => comm.allReduce(bufs.a, { op: 'sum' });
    case 'broadcast': return () => comm.broadcast(bufs.a, { root: 0 });
    case 'allgather': return () => comm.allGather(bufs.a, bufs.b);
    case 'reducescatter': return () => comm.reduceScatter(bufs.a, bufs.b, { op: 'sum' });
  }
  throw new Error(`nodeccl_worker: unknown collective ${coll}`);
}

/** One size: check, then time; every iteration starts after a barrier (slowest rank counts). */
async function measure(comm, coll, bytes, plan, store) {
  const n = comm.size;
  const c = blockCount(coll, bytes, n);
  if (c === 0) return null;
  const inCount = coll === 'reducescatter' ? c * n : c;
  const outCount = coll === 'allgather' ? c * n : coll === 'reducescatter' ? c : 0;
  const bufs = { a: store.a.subarray(0, inCount), b: store.b.subarray(0, outCount) };
  const op = opFor(comm, coll, bufs);
  fill(coll, bufs, comm.rank);
  await op();
  const wrong = new Float64Array([countWrong(coll, bufs, comm.rank, n, c)]);
  // In-place sums would grow by x n per call until they overflow: time on zeros instead.
  if (coll === 'allreduce') bufs.a.fill(0);
  for (let i = 0, w = warmupFor(plan, bytes); i < w; i++) await op();
  const iters = itersFor(plan, bytes);
  const times = new Float64Array(iters);
  for (let i = 0; i < iters; i++) {
    await comm.barrier();
    const t0 = process.hrtime.bigint();
    await op();
    times[i] = Number(process.hrtime.bigint() - t0) / 1e3;
  }
  await comm.allReduce(times, { op: 'max' });
  await comm.allReduce(wrong, { op: 'sum' });
  const perRank = coll === 'allgather' || coll === 'reducescatter';
  return { coll, bytes: (perRank ? c * n : c) * 4, count: perRank ? c * n : c,
    us: median(times), wrong: wrong[0], iters };
}

async function main() {
  const plan = parsePlan(process.argv.slice(2));
  const { init } = require('nodeccl');
  const comm = await init();
  // One pair of buffers of the largest size, written once (first-touch page faults are not
  // part of a collective), reused through views.
  const maxCount = Math.max(...plan.sizes) / 4;
  const shared = process.env.NODECCL_BENCH_SHARED === '1';
  const alloc = (n) => (shared ? comm.allocShared('float32', n, { required: true })
    : new Float32Array(n));
  const store = { a: alloc(maxCount), b: alloc(maxCount) };
  store.a.fill(1);
  store.b.fill(1);
  for (const coll of plan.colls) {
    for (const bytes of plan.sizes) {
      const m = await measure(comm, coll, bytes, plan, store);
      if (m && comm.rank === 0) process.stdout.write(`RESULT ${JSON.stringify(m)}\n`);
    }
  }
  await comm.destroy();
}

main().catch((err) => {
  process.stderr.write(`nodeccl_worker: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 1;
});
