#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// The multi-host bench: builds several "hosts" on this machine (network namespaces on a bridge,
// scripts/netns.js; needs root), limits the links between them with tbf, and times all-reduce
// on a job of R ranks per host with the flat ring, the hierarchical algorithm and auto (which
// times both on its first calls and keeps the faster), in one run, for each link rate. Prints
// and writes (bench/results/hosts.md) an nccl-tests style table: size, time and busbw per
// algorithm and the hierarchical/ring speed ratio.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { Command, InvalidArgumentError } = require('commander');
const { makeHosts } = require('../scripts/netns');

const ROOT = path.resolve(__dirname, '..');
const WORKER = path.join(__dirname, 'peers', 'nodeccl_worker.js');
const UNITS = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

function parseBytesList(value) {
  return value.split(',').map((s) => {
    const m = /^(\d+)([KMG]?)$/i.exec(s.trim());
    const n = m ? Number(m[1]) * UNITS[m[2].toUpperCase()] : NaN;
    if (!Number.isSafeInteger(n) || n < 4 || n % 4) {
      throw new InvalidArgumentError(`expected sizes such as 64K,1M (multiples of 4), got "${s}"`);
    }
    return n;
  });
}

function parseRates(value) {
  return value.split(',').map((s) => {
    if (s.trim() === 'none') return null;
    const n = Number(s);
    if (!Number.isFinite(n) || n <= 0) {
      throw new InvalidArgumentError(`expected link rates in Mbit/s or "none", got "${s}"`);
    }
    return n;
  });
}

function parseCount(value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected an integer >= 1`);
  return n;
}

function parseOptions(argv) {
  return new Command('hosts')
    .description('All-reduce over network-namespace hosts: flat ring vs hierarchical, per ' +
      'link rate (root only).')
    .option('--hosts <n>', 'number of hosts', parseCount, 2)
    .option('--ranks-per-host <n>', 'ranks on each host', parseCount, 2)
    .option('--rates <list>', 'link rates in Mbit/s ("none": unlimited)', parseRates,
      [null, 1000, 200])
    .option('--sizes <list>', 'message sizes', parseBytesList,
      [64 * 1024, 1024 ** 2, 8 * 1024 ** 2, 32 * 1024 ** 2])
    .option('--iters <n>', 'timed iterations per size (median)', parseCount, 5)
    .option('--loss <percent>', 'drop this % of packets on every link (iptables)', Number, 0)
    .option('--out <file>', 'markdown output', path.join(__dirname, 'results', 'hosts.md'))
    .parse(argv, { from: 'user' }).opts();
}

// Runs one job (every rank on its host) and returns rank 0's RESULT lines.
function runJob(h, opts, algo, port) {
  const size = opts.hosts * opts.ranksPerHost;
  // auto spends its first 4 large calls timing both algorithms: keep them out of the medians.
  const args = ['--colls', 'allreduce', '--sizes', opts.sizes.join(','), '--iters',
    String(opts.iters), '--warmup', algo === 'auto' ? '5' : '1'];
  const results = [];
  let failed = '';
  const exits = [];
  for (let rank = 0; rank < size; rank++) {
    const argv = h.exec(Math.floor(rank / opts.ranksPerHost), [process.execPath, WORKER, ...args]);
    const child = spawn(argv[0], argv.slice(1), {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(size),
        MASTER_ADDR: h.addrs[0], MASTER_PORT: String(port), NODECCL_SOCKET_IFNAME: 'eth0',
        NODECCL_ALGO: algo, NODECCL_TOKEN: `bench-hosts-${process.pid}` },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    exits.push(new Promise((resolve) => child.on('close', (code) => {
      if (code !== 0) failed += `rank ${rank} exited with ${code}: ${err.slice(-1500)}\n`;
      for (const line of out.split('\n')) {
        if (line.startsWith('RESULT ')) results.push(JSON.parse(line.slice(7)));
      }
      resolve();
    })));
  }
  return Promise.all(exits).then(() => {
    if (failed) throw new Error(`${algo} job failed:\n${failed}`);
    return results;
  });
}

const fmtBytes = (b) => (b >= 1024 ** 2 ? `${b / 1024 ** 2} MiB` : `${b / 1024} KiB`);

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  const h = makeHosts(opts.hosts, 'b');
  if (typeof h === 'string') {
    console.error(`hosts bench: cannot make hosts here: ${h}`);
    process.exit(2);
  }
  const size = opts.hosts * opts.ranksPerHost;
  const busFactor = (2 * (size - 1)) / size;
  const lines = [`# All-reduce across ${opts.hosts} hosts x ${opts.ranksPerHost} ranks ` +
    '(network namespaces on this machine)', '',
    `float32 sum; median of ${opts.iters}; busbw = algbw x 2(n-1)/n with n = ${size}. ` +
    `Packet loss: ${opts.loss}%. ` +
    `Command: \`node bench/hosts.js ${process.argv.slice(2).join(' ')}\``,
    ''];
  let port = 33000 + (process.pid % 1000);
  let wrong = 0;
  try {
    for (let i = 0; i < opts.hosts && opts.loss > 0; i++) h.loss(i, opts.loss);
    for (const rate of opts.rates) {
      for (let i = 0; i < opts.hosts; i++) {
        if (rate !== null) h.limit(i, rate);
      }
      const byAlgo = {};
      for (const algo of ['ring', 'hier', 'auto']) {
        byAlgo[algo] = await runJob(h, opts, algo, ++port);
      }
      const title = rate === null ? 'unlimited veth links' : `links limited to ${rate} Mbit/s`;
      lines.push(`## ${title}`, '', '| size | ring time | ring busbw | hier time | hier busbw ' +
        '| hier / ring speed | auto time | auto busbw |', '|---|---|---|---|---|---|---|---|');
      for (const bytes of opts.sizes) {
        const [r, q, a] = ['ring', 'hier', 'auto'].map((k) =>
          byAlgo[k].find((x) => x.bytes === bytes));
        wrong += [r, q, a].reduce((n, x) => n + (x ? x.wrong : 0), 0);
        const bw = (x) => (x ? (bytes / x.us / 1e3) * busFactor : NaN);
        const t = (x) => (x ? `${(x.us / 1e3).toFixed(2)} ms` : 'n/a');
        lines.push(`| ${fmtBytes(bytes)} | ${t(r)} | ${bw(r).toFixed(3)} GB/s | ${t(q)} | ` +
          `${bw(q).toFixed(3)} GB/s | ${r && q ? (r.us / q.us).toFixed(2) : 'n/a'}x | ${t(a)} | ` +
          `${bw(a).toFixed(3)} GB/s |`);
      }
      lines.push('');
      console.log(lines.slice(-opts.sizes.length - 4).join('\n'));
    }
  } finally {
    h.remove();
  }
  if (wrong > 0) lines.push(`**${wrong} wrong elements** (see the RESULT lines).`);
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(opts.out, `${lines.join('\n')}\n`);
  console.log(`wrote ${opts.out}`);
  if (wrong > 0) process.exit(1);
}

main().catch((e) => {
  console.error(`hosts bench: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
