#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// The collectives bench: sweeps all-reduce, broadcast, all-gather and reduce-scatter over message
// sizes and world sizes for nodeccl, PyTorch's Gloo backend and Open MPI, plus single-core memcpy
// as the ceiling, all in one run; prints one nccl-tests style table per collective and writes
// them as markdown, raw JSON and an SVG plot of busbw against size into bench/results/.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { Command, InvalidArgumentError } = require('commander');
const { COLLECTIVES } = require('./peers/plan');
const { measureMemcpy } = require('./memcpy');
const { printTables, writeMarkdown } = require('./report');
const { writePlot } = require('./plot');

const ROOT = path.resolve(__dirname, '..');
const LAUNCHER = path.join(ROOT, 'dist', 'cli', 'run.js');
const PYTHON = '/usr/bin/python3';  // Debian's python3-torch lives in the system interpreter
const MPI_BIN_DIR = path.join(ROOT, 'build-bench');  // git-ignored (build-*/)
const IMPLS = ['nodeccl', 'nodeccl-shared', 'gloo', 'mpi'];
const UNITS = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

// ---- options -----------------------------------------------------------------------------

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

function parseList(allowed) {
  return (value) => {
    const list = value.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = list.filter((s) => !allowed.includes(s));
    if (bad.length || !list.length) {
      throw new InvalidArgumentError(`expected a comma-separated list of ${allowed.join(', ')}; ` +
        `got "${value}"`);
    }
    return list;
  };
}

function parseRanks(value) {
  const list = value.split(',').map(Number);
  if (!list.length || list.some((n) => !Number.isInteger(n) || n < 2)) {
    throw new InvalidArgumentError(`expected world sizes of 2 or more such as 2,4, got "${value}"`);
  }
  return list;
}

function parseOptions(argv) {
  const program = new Command('collectives')
    .description('Collectives sweep (float32, nccl-tests conventions): nodeccl vs PyTorch Gloo ' +
      'vs Open MPI vs memcpy, in one run.')
    .option('--ranks <list>', 'world sizes, comma separated', parseRanks, [2, 4])
    .option('--colls <list>', 'collectives to run', parseList(COLLECTIVES), COLLECTIVES)
    .option('--impls <list>', 'implementations to run', parseList(IMPLS), IMPLS)
    .option('--min-bytes <n>', 'smallest message (K, M, G suffixes)', parseBytes, 8)
    .option('--max-bytes <n>', 'largest message', parseBytes, 256 * 1024 ** 2)
    .option('--step-factor <n>', 'multiply the size by this each step', parseIntAtLeast(2), 2)
    .option('--iters <n>', 'timed iterations per size (median reported)', parseIntAtLeast(1), 100)
    .option('--warmup <n>', 'untimed iterations per size (capped as --iters is)',
      parseIntAtLeast(0), 300)
    .option('--max-iter-bytes <n>', 'large sizes run fewer iterations, so that iterations x ' +
      'size stays under this (at least 3 run)', parseBytes, 2 * 1024 ** 3)
    .option('--rounds <n>', 'run every implementation this many times, taking turns, and ' +
      'report the median of its per-round times (steadier ratios on a noisy machine)',
      parseIntAtLeast(1), 1)
    .option('--timeout <s>', 'seconds one implementation may take at one world size',
      parseIntAtLeast(1), 3600)
    .option('--label <name>', 'suffix for the result files (default: the NODECCL_TRANSPORT ' +
      'value, if set)')
    .option('--out <dir>', 'directory for the results', path.join(__dirname, 'results'))
    .showHelpAfterError()
    .parse(argv);
  const opts = program.opts();
  if (opts.minBytes > opts.maxBytes) {
    program.error(`error: --min-bytes ${opts.minBytes} is above --max-bytes ${opts.maxBytes}`);
  }
  if (opts.label !== undefined && !/^[\w.-]+$/.test(opts.label)) {
    program.error(`error: --label "${opts.label}" must be letters, digits, ".", "_" or "-"`);
  }
  opts.label ??= process.env.NODECCL_TRANSPORT || '';
  opts.sizes = [];
  for (let b = opts.minBytes; b <= opts.maxBytes; b *= opts.stepFactor) opts.sizes.push(b);
  return opts;
}

function planArgs(opts) {
  return ['--colls', opts.colls.join(','), '--sizes', opts.sizes.join(','), '--iters',
    String(opts.iters), '--warmup', String(opts.warmup), '--max-iter-bytes',
    String(opts.maxIterBytes)];
}

// ---- running processes -------------------------------------------------------------------

/**
 * Runs one command (or several at once, for Gloo's ranks), parsing "RESULT {json}" and
 * "UNSUPPORTED coll why" lines from stdout as they come. Resolves to {results, unsupported,
 * error}: error is a message when any process failed, with the tail of its stderr.
 */
function runJob(label, commands, timeoutS) {
  const results = [];
  const unsupported = {};
  const errors = [];
  const procs = commands.map(({ cmd, args, env }) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
      let nl;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line.startsWith('RESULT ')) {
          const r = JSON.parse(line.slice(7));
          results.push(r);
          process.stderr.write(`  ${label} ${r.coll} ${r.bytes} B: ${r.us.toFixed(1)} us` +
            `${r.wrong ? ` (${r.wrong} WRONG)` : ''}\n`);
        } else if (line.startsWith('UNSUPPORTED ')) {
          const [, coll, ...why] = line.split(' ');
          unsupported[coll] = why.join(' ');
        }
      }
    });
    child.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
    return new Promise((resolve) => {
      child.on('error', (e) => { errors.push(`${cmd}: ${e.message}`); resolve(); });
      child.on('exit', (code, signal) => {
        if (code !== 0) {
          errors.push(`${cmd} exited with ${signal || code}; stderr ends:\n` +
            err.trim().split('\n').slice(-8).join('\n'));
        }
        resolve();
      });
    }).then(() => child);
  });
  const timer = setTimeout(() => {
    errors.push(`timed out after ${timeoutS} s (raise --timeout)`);
    for (const p of procs) p.then((c) => c.kill('SIGKILL'));
  }, timeoutS * 1000);
  return Promise.all(procs).then(() => {
    clearTimeout(timer);
    return { results, unsupported, error: errors.length ? errors.join('\n') : null };
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function which(cmd) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const f = path.join(dir, cmd);
    if (fs.existsSync(f)) return f;
  }
  return null;
}

// ---- the implementations -----------------------------------------------------------------
// Each has check() -> null when usable or a "missing: why, how to fix" message, and
// commands(n, opts) -> the processes of one n-rank run.

const IMPLEMENTATIONS = {
  nodeccl: {
    title: 'nodeccl',
    check() {
      if (!fs.existsSync(LAUNCHER) || !fs.existsSync(path.join(ROOT, 'dist', 'index.js'))) {
        return 'dist/ is not built; run `npm run build` (or `npm run bench`, which builds)';
      }
      return null;
    },
    async commands(n, opts) {
      return [{ cmd: process.execPath, args: [LAUNCHER, '-np', String(n), '--no-prefix',
        process.execPath, path.join(__dirname, 'peers', 'nodeccl_worker.js'),
        ...planArgs(opts)] }];
    },
  },
  // The same worker with its buffers from comm.allocShared: arrays every local rank maps,
  // which the collectives read (and the all-reduce writes) in place instead of staging them.
  'nodeccl-shared': {
    title: 'nodeccl shared',
    check() { return IMPLEMENTATIONS.nodeccl.check(); },
    async commands(n, opts) {
      const [job] = await IMPLEMENTATIONS.nodeccl.commands(n, opts);
      return [{ ...job, env: { NODECCL_BENCH_SHARED: '1' } }];
    },
  },
  gloo: {
    title: 'Gloo',
    version: null,
    check() {
      if (!fs.existsSync(PYTHON)) return `${PYTHON} not found; run \`npm run bench:setup\``;
      const probe = require('node:child_process').spawnSync(PYTHON, ['-c',
        'import torch, torch.distributed as d; assert d.is_gloo_available(); ' +
        'print(torch.__version__)'], { encoding: 'utf8' });
      if (probe.status !== 0) {
        return `${PYTHON} cannot import torch with Gloo (${(probe.stderr || '').trim()
          .split('\n').pop()}); run \`npm run bench:setup\` (Debian python3-torch)`;
      }
      this.version = `PyTorch ${probe.stdout.trim()}`;
      return null;
    },
    async commands(n, opts) {
      const port = await freePort();
      return Array.from({ length: n }, (_, r) => ({ cmd: PYTHON,
        args: [path.join(__dirname, 'peers', 'torch_gloo.py'), ...planArgs(opts)],
        env: { RANK: String(r), WORLD_SIZE: String(n), MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: String(port), OMP_NUM_THREADS: '1', PYTHONWARNINGS: 'ignore' } }));
    },
  },
  mpi: {
    title: 'Open MPI',
    version: null,
    check() {
      const mpicc = which('mpicc');
      const mpirun = which('mpirun');
      if (!mpicc || !mpirun) {
        return `${mpicc ? 'mpirun' : 'mpicc'} is not on PATH; run \`npm run bench:setup\` ` +
          '(Debian openmpi-bin and libopenmpi-dev)';
      }
      const { spawnSync } = require('node:child_process');
      const v = spawnSync(mpirun, ['--version'], { encoding: 'utf8' });
      const m = /(\d+\.\d+(\.\d+)?)/.exec(v.stdout || '');
      this.version = m ? m[1] : null;
      // Compiled at bench time: the MPI headers and library of this machine.
      fs.mkdirSync(MPI_BIN_DIR, { recursive: true });
      const src = path.join(__dirname, 'peers', 'mpi_bench.c');
      const bin = path.join(MPI_BIN_DIR, 'mpi_bench');
      const cc = spawnSync(mpicc, ['-O2', '-o', bin, src], { encoding: 'utf8' });
      if (cc.status !== 0) return `mpicc could not compile ${src}:\n${cc.stderr}`;
      return null;
    },
    async commands(n, opts) {
      return [{ cmd: 'mpirun', args: ['--allow-run-as-root', '--oversubscribe', '-np', String(n),
        path.join(MPI_BIN_DIR, 'mpi_bench'), ...planArgs(opts)] }];
    },
  },
};

/**
 * One result per collective and size from several rounds: the median of the rounds' times
 * (each already a median over iterations), their wrong elements added up, and every round's
 * time kept as `rounds` in the JSON.
 */
function mergeRounds(all) {
  const byKey = new Map();
  for (const r of all.results) {
    const key = `${r.coll} ${r.bytes}`;
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key).push(r);
  }
  all.results = [...byKey.values()].map((rs) => {
    const us = rs.map((r) => r.us).sort((a, b) => a - b);
    const mid = us.length >> 1;
    const median = us.length % 2 ? us[mid] : (us[mid - 1] + us[mid]) / 2;
    return { ...rs[0], us: median, wrong: rs.reduce((s, r) => s + r.wrong, 0),
      rounds: rs.map((r) => r.us) };
  });
}

// ---- main --------------------------------------------------------------------------------

function describeMachine() {
  const cpu = os.cpus()[0] ? os.cpus()[0].model.trim() : 'unknown CPU';
  return `${os.hostname()}: ${os.cpus().length} x ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)}` +
    ` GiB, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at start`;
}

async function main() {
  const opts = parseOptions(process.argv);
  const started = new Date();
  const run = { machine: describeMachine(), node: process.version, started: started.toISOString(),
    transport: process.env.NODECCL_TRANSPORT || 'auto (the default)', opts, impls: {}, worlds: [] };

  // Which implementations can run; a missing one is reported, never silently dropped.
  for (const name of opts.impls) {
    const impl = IMPLEMENTATIONS[name];
    const missing = impl.check();
    run.impls[name] = { title: impl.title, version: impl.version || null, missing };
    if (missing) console.log(`# ${impl.title}: MISSING - ${missing}`);
  }

  for (const n of opts.ranks) {
    const world = { n, byImpl: {}, memcpy: null };
    // Implementations take turns collective by collective (and, with --rounds, round by round,
    // each round starting with the next implementation), so a change in the machine's load
    // (other jobs) during the run affects them alike rather than one of them.
    const usable = opts.impls.filter((name) => !run.impls[name].missing);
    for (let round = 0; round < opts.rounds; round++) {
      for (const coll of opts.colls) {
        for (const name of [...usable.slice(round % usable.length),
          ...usable.slice(0, round % usable.length)]) {
          process.stderr.write(`# ${n} ranks: ${IMPLEMENTATIONS[name].title} ${coll}` +
            `${opts.rounds > 1 ? ` (round ${round + 1} of ${opts.rounds})` : ''}...\n`);
          const t0 = Date.now();
          const job = await runJob(`[${name} n=${n}]`,
            await IMPLEMENTATIONS[name].commands(n, { ...opts, colls: [coll] }), opts.timeout);
          if (job.error) {
            console.log(`# ${IMPLEMENTATIONS[name].title}, ${n} ranks, ${coll}: FAILED - ` +
              job.error);
          }
          const all = world.byImpl[name] ??= { results: [], unsupported: {}, error: null,
            seconds: 0 };
          all.results.push(...job.results);
          Object.assign(all.unsupported, job.unsupported);
          if (job.error) all.error = all.error ? `${all.error}\n${job.error}` : job.error;
          all.seconds += (Date.now() - t0) / 1e3;
        }
      }
    }
    if (opts.rounds > 1) for (const all of Object.values(world.byImpl)) mergeRounds(all);
    // memcpy between the runs, when nothing else of ours is running.
    process.stderr.write(`# memcpy...\n`);
    world.memcpy = measureMemcpy(opts.sizes);
    run.worlds.push(world);
    printTables(run, world);
  }

  run.seconds = (Date.now() - started.getTime()) / 1e3;
  run.loadAtEnd = os.loadavg().map((l) => l.toFixed(1)).join(' ');
  fs.mkdirSync(opts.out, { recursive: true });
  const base = path.join(opts.out, `collectives${opts.label ? `-${opts.label}` : ''}`);
  fs.writeFileSync(`${base}.json`, JSON.stringify(run, null, 1));
  writeMarkdown(run, `${base}.md`);
  await writePlot(run, `${base}.svg`);
  const rel = (f) => path.relative(process.cwd(), f);
  console.log(`# wrote ${rel(`${base}.md`)}, ${rel(`${base}.svg`)} and ${rel(`${base}.json`)} ` +
    `in ${run.seconds.toFixed(0)} s`);

  // Non-zero exit when any result was wrong or nodeccl failed to run.
  let bad = 0;
  for (const w of run.worlds) {
    for (const [name, job] of Object.entries(w.byImpl)) {
      bad += job.results.reduce((s, r) => s + r.wrong, 0);
      if (name.startsWith('nodeccl') && job.error) bad++;
    }
  }
  if (run.impls.nodeccl && run.impls.nodeccl.missing) bad++;
  return bad ? 2 : 0;
}

main().then((code) => { process.exitCode = code; }, (err) => {
  process.stderr.write(`collectives: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 1;
});
