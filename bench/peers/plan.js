// SPDX-License-Identifier: Apache-2.0
// The measurement plan every implementation's worker follows, so that nodeccl, Gloo and Open MPI
// are timed the same way: argument parsing, buffer patterns, iteration counts and the median.
// bench/peers/torch_gloo.py and bench/peers/mpi_bench.c implement the same rules (README.md).
'use strict';

const COLLECTIVES = ['allreduce', 'broadcast', 'allgather', 'reducescatter'];

/**
 * Parses `--colls a,b --sizes 8,16 --iters 20 --warmup 5 --max-iter-bytes N` (the workers'
 * common command line, written by bench/collectives.js).
 */
function parsePlan(argv) {
  const plan = { colls: COLLECTIVES, sizes: [], iters: 20, warmup: 5, maxIterBytes: 2 ** 31 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`plan: ${flag} needs a value`);
    if (flag === '--colls') plan.colls = value.split(',');
    else if (flag === '--sizes') plan.sizes = value.split(',').map(Number);
    else if (flag === '--iters') plan.iters = Number(value);
    else if (flag === '--warmup') plan.warmup = Number(value);
    else if (flag === '--max-iter-bytes') plan.maxIterBytes = Number(value);
    else throw new Error(`plan: unknown flag ${flag}; expected --colls, --sizes, --iters, ` +
      '--warmup or --max-iter-bytes');
  }
  return plan;
}

/**
 * Per-rank element count for a collective at nccl-tests size S (bytes of float32): all-reduce
 * and broadcast pass S bytes; all-gather's output and reduce-scatter's input are S bytes, so
 * each rank's block is S / 4 / n elements (rounded down; 0 means the size is skipped).
 */
function blockCount(coll, bytes, n) {
  const total = Math.floor(bytes / 4);
  return coll === 'allreduce' || coll === 'broadcast' ? total : Math.floor(total / n);
}

/** Timed iterations at this size: --iters, fewer when iterations x size passes the cap. */
function itersFor(plan, bytes) {
  return Math.max(3, Math.min(plan.iters, Math.floor(plan.maxIterBytes / bytes)));
}

/**
 * Untimed iterations at this size: --warmup, fewer when iterations x size passes the cap (at
 * least 2). Many at small sizes: a fresh process runs its first few hundred calls slower (in
 * nodeccl's case, V8 compiling the call path on a background thread while both ranks spin).
 */
function warmupFor(plan, bytes) {
  return Math.max(2, Math.min(plan.warmup, Math.floor(plan.maxIterBytes / bytes)));
}

/** Median of a numeric array (copied, then sorted). */
function median(values) {
  const s = Float64Array.from(values).sort();
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

module.exports = { COLLECTIVES, parsePlan, blockCount, itersFor, warmupFor, median };
