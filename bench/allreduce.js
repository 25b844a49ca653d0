// SPDX-License-Identifier: Apache-2.0
// All-reduce sweep in the style of nccl-tests: for each size, check the float32 sum, then time
// it and print size, count, median time, algbw, busbw and #wrong. Launches itself per world size.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Command, InvalidArgumentError } = require('commander');

const ROOT = path.resolve(__dirname, '..');
const LAUNCHER = path.join(ROOT, 'dist', 'cli', 'run.js');
const RESULTS = path.join(__dirname, 'results');
const UNITS = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** "8", "64K", "256M", "1G" (binary units) to a byte count that is a multiple of 4. */
function parseBytes(value) {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(value.trim());
  const bytes = m ? Number(m[1]) * UNITS[m[2].toUpperCase()] : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 4 || bytes % 4 !== 0) {
    throw new InvalidArgumentError(`expected a byte count such as 8, 64K or 256M (a multiple ` +
      `of 4, the float32 size), got "${value}"`);
  }
  return bytes;
}

function parseIntAtLeast(min) {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) {
      throw new InvalidArgumentError(`expected an integer >= ${min}, got "${value}"`);
    }
    return n;
  };
}

function parseRanks(value) {
  const list = value.split(',').map(Number);
  if (list.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new InvalidArgumentError(`expected rank counts such as 2,4, got "${value}"`);
  }
  return list;
}

function parseOptions(argv) {
  const program = new Command('allreduce')
    .description('nodeccl all-reduce sweep (float32 sum, in place), nccl-tests style.')
    .option('--ranks <list>', 'world sizes to run, comma separated', parseRanks, [2, 4])
    .option('--min-bytes <n>', 'smallest message (K, M, G suffixes)', parseBytes, 8)
    .option('--max-bytes <n>', 'largest message', parseBytes, 256 * 1024 ** 2)
    .option('--step-factor <n>', 'multiply the size by this each step', parseIntAtLeast(2), 2)
    .option('--iters <n>', 'timed iterations per size (median reported)', parseIntAtLeast(1), 20)
    .option('--warmup <n>', 'untimed iterations per size', parseIntAtLeast(0), 5)
    .option('--max-iter-bytes <n>', 'large sizes run fewer iterations, so that iterations x ' +
      'size stays under this (at least 3 run)', parseBytes, 2 * 1024 ** 3)
    .showHelpAfterError()
    .parse(argv);
  const opts = program.opts();
  if (opts.minBytes > opts.maxBytes) {
    program.error(`error: --min-bytes ${opts.minBytes} is above --max-bytes ${opts.maxBytes}`);
  }
  return opts;
}

// ---- parent: one launcher run per world size ------------------------------------------------

/** Runs this script under nodeccl-run for each world size in --ranks, forwarding arguments. */
function launchAll(opts) {
  if (!fs.existsSync(LAUNCHER) || !fs.existsSync(path.join(ROOT, 'dist', 'index.js'))) {
    process.stderr.write(`allreduce: ${path.relative(process.cwd(), LAUNCHER)} or dist/index.js ` +
      'is missing; build first with `npm run build` (or run `npm run bench`)\n');
    return 1;
  }
  const forwarded = process.argv.slice(2);
  for (const n of opts.ranks) {
    const r = spawnSync(process.execPath,
      [LAUNCHER, '-np', String(n), '--no-prefix', process.execPath, __filename, ...forwarded],
      { stdio: 'inherit', env: { ...process.env, NODECCL_BENCH_CHILD: '1' } });
    if (r.status !== 0) {
      process.stderr.write(`allreduce: the ${n}-rank run failed (exit ${r.status}` +
        `${r.signal ? `, ${r.signal}` : ''})\n`);
      return r.status || 1;
    }
  }
  return 0;
}

// ---- child: one rank of the sweep ---------------------------------------------------------

/** Message sizes from min to max bytes, multiplying by the step factor. */
function sizesOf(opts) {
  const sizes = [];
  for (let b = opts.minBytes; b <= opts.maxBytes; b *= opts.stepFactor) sizes.push(b);
  return sizes;
}

// Rank r contributes (r + 1) * (i % 13 + 1) at element i, so the sum is n(n+1)/2 * (i % 13 + 1):
// small integers, exact in float32, and a misplaced chunk or a missing rank changes the value.
function fillPattern(data, rank) {
  for (let i = 0; i < data.length; i++) data[i] = (rank + 1) * ((i % 13) + 1);
}

function countWrong(data, size) {
  const tri = (size * (size + 1)) / 2;
  let wrong = 0;
  for (let i = 0; i < data.length; i++) if (data[i] !== tri * ((i % 13) + 1)) wrong++;
  return wrong;
}

/** Median of a numeric array (copied, then sorted). */
function median(values) {
  const s = Float64Array.from(values).sort();
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * One size: check, then time. Each timed iteration starts after a barrier; its time is the
 * slowest rank's (an all-reduce max over the per-iteration times, after the loop), and the
 * reported time is the median of those.
 */
async function measure(comm, data, opts) {
  fillPattern(data, comm.rank);
  await comm.allReduce(data, { op: 'sum' });
  const wrong = new Float32Array([countWrong(data, comm.size)]);

  // Zeros from here on: repeated in-place sums would otherwise grow without bound (x n each
  // time) and reach infinity; float adds cost the same whatever the values (no subnormals).
  data.fill(0);
  for (let i = 0; i < opts.warmup; i++) await comm.allReduce(data, { op: 'sum' });
  const iters = Math.max(3, Math.min(opts.iters, Math.floor(opts.maxIterBytes / data.byteLength)));
  const times = new Float32Array(iters);
  for (let i = 0; i < iters; i++) {
    await comm.barrier();
    const t0 = process.hrtime.bigint();
    await comm.allReduce(data, { op: 'sum' });
    times[i] = Number(process.hrtime.bigint() - t0) / 1e3;
  }
  await comm.allReduce(times, { op: 'max' });
  await comm.allReduce(wrong, { op: 'sum' });
  return { us: median(times), wrong: wrong[0], iters };
}

const COLUMNS = [
  ['size (B)', 13], ['count', 12], ['type', 7], ['op', 4], ['time (us)', 11],
  ['algbw (GB/s)', 13], ['busbw (GB/s)', 13], ['#wrong', 7], ['iters', 6],
];

function rowOf(bytes, n, m) {
  const algbw = bytes / (m.us * 1e3);  // bytes per ns = GB/s
  const busbw = (algbw * 2 * (n - 1)) / n;
  return [String(bytes), String(bytes / 4), 'float', 'sum', m.us.toFixed(1),
    algbw.toFixed(3), busbw.toFixed(3), String(m.wrong), String(m.iters)];
}

function header(n, opts) {
  const cpu = os.cpus()[0] ? os.cpus()[0].model.trim() : 'unknown CPU';
  return [
    `nodeccl all-reduce, float32 sum in place, ${n} ranks on ${os.hostname()} ` +
      `(${os.cpus().length} x ${cpu}), node ${process.version}`,
    `transport: ${process.env.NODECCL_TRANSPORT || "the library's default"}; ${opts.warmup} ` +
      `warm-up and up to ${opts.iters} timed iterations per size`,
    'time: median over iterations of the slowest rank; busbw = algbw x 2(n-1)/n',
  ];
}

/** Prints the table as the sweep goes (rank 0), and returns its rows for the markdown file. */
async function sweep(comm, opts) {
  const data = new Float32Array(opts.maxBytes / 4);
  const rows = [];
  if (comm.rank === 0) {
    for (const line of header(comm.size, opts)) console.log(`# ${line}`);
    console.log(`#${COLUMNS.map(([t, w]) => t.padStart(w)).join('')}`);
  }
  for (const bytes of sizesOf(opts)) {
    const m = await measure(comm, data.subarray(0, bytes / 4), opts);
    const row = rowOf(bytes, comm.size, m);
    rows.push(row);
    if (comm.rank === 0) console.log(` ${row.map((c, i) => c.padStart(COLUMNS[i][1])).join('')}`);
  }
  return rows;
}

function writeMarkdown(n, opts, rows) {
  const md = [
    `# nodeccl all-reduce, ${n} ranks`, '',
    ...header(n, opts).map((l) => `${l}  `), `${new Date().toISOString()}`, '',
    `| ${COLUMNS.map(([t]) => t).join(' | ')} |`,
    `|${COLUMNS.map(() => '---:|').join('')}`,
    ...rows.map((r) => `| ${r.join(' | ')} |`), '',
  ];
  fs.mkdirSync(RESULTS, { recursive: true });
  const file = path.join(RESULTS, `allreduce-${n}ranks.md`);
  fs.writeFileSync(file, md.join('\n'));
  return file;
}

async function runRank(opts) {
  const { init } = require('nodeccl');
  const comm = await init();
  const rows = await sweep(comm, opts);
  const wrong = rows.reduce((s, r) => s + Number(r[7]), 0);
  if (comm.rank === 0) {
    const file = writeMarkdown(comm.size, opts, rows);
    console.log(`# ${wrong === 0 ? 'all results correct' : `${wrong} WRONG elements`}; ` +
      `table written to ${path.relative(process.cwd(), file)}\n`);
  }
  await comm.destroy();
  return wrong === 0 ? 0 : 2;
}

const opts = parseOptions(process.argv);
if (process.env.NODECCL_BENCH_CHILD === '1') {
  runRank(opts).then((code) => { process.exitCode = code; }, (err) => {
    process.stderr.write(`allreduce: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 1;
  });
} else {
  process.exitCode = launchAll(opts);
}
