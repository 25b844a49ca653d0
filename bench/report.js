// SPDX-License-Identifier: Apache-2.0
// Tables of the collectives bench: one per collective and world size, nccl-tests columns (size,
// count, time, algbw, busbw) for every implementation side by side, memcpy as the ceiling and
// nodeccl's busbw over each peer's; printed as aligned text and written as markdown.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const TITLES = {
  allreduce: 'all-reduce (sum, in place)',
  broadcast: 'broadcast (root 0, in place)',
  allgather: 'all-gather',
  reducescatter: 'reduce-scatter (sum)',
};

// nccl-tests' bus bandwidth factors: the share of S each rank's link carries in an optimal
// algorithm. S is the size of the largest buffer: all-gather's output, reduce-scatter's input.
const BUS = {
  allreduce: { factor: (n) => (2 * (n - 1)) / n, text: 'busbw = algbw x 2(n-1)/n' },
  broadcast: { factor: () => 1, text: 'busbw = algbw' },
  allgather: { factor: (n) => (n - 1) / n, text: 'busbw = algbw x (n-1)/n; S = output bytes' },
  reducescatter: { factor: (n) => (n - 1) / n, text: 'busbw = algbw x (n-1)/n; S = input bytes' },
};

/**
 * The memcpy rate measured at the size nearest this one (by ratio): collectives whose blocks
 * must split evenly run sizes a little off the sweep's (1020 B for 1 KiB at 3 ranks).
 */
function memcpyAt(memcpy, bytes) {
  const sizes = Object.keys(memcpy).map(Number).filter((s) => s > 0);
  if (!sizes.length || bytes <= 0) return NaN;
  const off = (s) => Math.abs(Math.log(s / bytes));
  return memcpy[sizes.reduce((a, b) => (off(b) < off(a) ? b : a))];
}

/** Runnable implementations in a world, in the order they ran. */
function implsOf(run, world) {
  return Object.keys(world.byImpl).map((name) => ({ name, ...run.impls[name],
    job: world.byImpl[name] }));
}

/**
 * Notes above a table: implementations that are missing, failed, or do not offer the
 * collective, so a blank column always has its reason next to it.
 */
function notesFor(run, world, coll) {
  const notes = [];
  for (const [name, impl] of Object.entries(run.impls)) {
    const job = world.byImpl[name];
    if (impl.missing) notes.push(`${impl.title}: MISSING - ${impl.missing}`);
    else if (job && job.unsupported[coll]) {
      notes.push(`${impl.title}: not supported - ${job.unsupported[coll]}`);
    } else if (job && job.error) notes.push(`${impl.title}: FAILED - ${job.error.split('\n')[0]}`);
  }
  return notes;
}

/** Header and rows (strings) of one collective's table in one world. */
function tableOf(run, world, coll) {
  const n = world.n;
  const impls = implsOf(run, world);
  const factor = BUS[coll].factor(n);
  const header = ['size (B)', 'count'];
  for (const impl of impls) {
    header.push(`${impl.title} us`, 'algbw', 'busbw');
  }
  header.push('#wrong', 'memcpy');
  // Ratio columns: each nodeccl variant (plain arrays, shared arrays) over each peer.
  const ours = impls.filter((i) => i.name.startsWith('nodeccl') &&
    i.job.results.some((r) => r.coll === coll));
  const peers = impls.filter((i) => !i.name.startsWith('nodeccl'));
  for (const o of ours) for (const p of peers) header.push(`${ratioPrefix(o)}x ${p.title}`);

  // Rows keyed by the bytes the workers report (all-gather and reduce-scatter round S down to
  // a multiple of 4n), in increasing size.
  const bytesSet = new Set();
  for (const impl of impls) {
    for (const r of impl.job.results) if (r.coll === coll) bytesSet.add(r.bytes);
  }
  const rows = [...bytesSet].sort((a, b) => a - b).map((bytes) => {
    const found = impls.map((impl) => impl.job.results.find((r) => r.coll === coll &&
      r.bytes === bytes));
    const any = found.find(Boolean);
    const row = [String(bytes), String(any.count)];
    const busbw = found.map((r) => (r ? (bytes / (r.us * 1e3)) * factor : NaN));
    found.forEach((r, k) => {
      if (!r) row.push('-', '-', '-');
      else row.push(r.us.toFixed(1), (bytes / (r.us * 1e3)).toFixed(3), busbw[k].toFixed(3));
    });
    row.push(found.map((r) => (r ? String(r.wrong) : '-')).join('/'));
    row.push(memcpyAt(world.memcpy, bytes).toFixed(2));
    for (const o of ours) {
      const mine = busbw[impls.indexOf(o)];
      for (const p of peers) {
        const theirs = busbw[impls.indexOf(p)];
        row.push(Number.isFinite(mine / theirs) ? `${(mine / theirs).toFixed(2)}x` : '-');
      }
    }
    return row;
  });
  return { header, rows };
}

// "" for nodeccl on plain arrays, "shared " for nodeccl on arrays from allocShared.
function ratioPrefix(impl) {
  return impl.name === 'nodeccl' ? '' : `${impl.name.slice('nodeccl-'.length)} `;
}

function titleLine(world, coll) {
  return `${TITLES[coll]}, ${world.n} ranks, float32 - ${BUS[coll].text}`;
}

// Printed under every title: what the short column names mean.
const LEGEND = 'size in bytes; <impl> us: median time in microseconds; algbw = S / time and ' +
  'busbw in GB/s; #wrong per implementation; memcpy: one core copying S bytes, GB/s; ' +
  'x <peer>: nodeccl busbw / peer busbw; nodeccl shared, shared x <peer>: the same on arrays ' +
  'from comm.allocShared';

/** Prints every collective's table for one world, aligned, with its notes. */
function printTables(run, world) {
  for (const coll of run.opts.colls) {
    const { header, rows } = tableOf(run, world, coll);
    console.log(`\n## ${titleLine(world, coll)}`);
    console.log(`# ${LEGEND}`);
    for (const note of notesFor(run, world, coll)) console.log(`# ${note}`);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)) + 2);
    console.log(header.map((h, i) => h.padStart(widths[i])).join(''));
    for (const r of rows) console.log(r.map((c, i) => c.padStart(widths[i])).join(''));
  }
  console.log('');
}

/** Writes the whole run as one markdown file. */
function writeMarkdown(run, file) {
  const o = run.opts;
  const versions = Object.values(run.impls).map((i) => (i.missing ? `${i.title}: missing` :
    `${i.title}${i.version ? ` (${i.version})` : ''}`));
  const md = [
    '# nodeccl collectives bench', '',
    `${run.machine}; node ${run.node}; ${os.platform()} ${os.release()}  `,
    `started ${run.started}, took ${run.seconds.toFixed(0)} s (load average ${run.loadAtEnd} ` +
      `at the end); nodeccl transport: ${run.transport}  `,
    `implementations: ${versions.join(', ')}  `,
    `sizes ${o.minBytes} B to ${o.maxBytes} B (x${o.stepFactor}); ${o.warmup} warm-up and up ` +
      `to ${o.iters} timed iterations per size (at most ${o.maxIterBytes} B per size in all, ` +
      'at least 3)  ',
    'time: median over iterations of the slowest rank, each iteration after a barrier' +
      (o.rounds > 1 ? `; the median of ${o.rounds} rounds, the implementations taking turns  `
        : '  '),
    `${LEGEND}`, '',
    `![busbw against size](${path.basename(file, '.md')}.svg)`, '',
  ];
  for (const world of run.worlds) {
    for (const coll of o.colls) {
      const { header, rows } = tableOf(run, world, coll);
      md.push(`## ${titleLine(world, coll)}`, '');
      for (const note of notesFor(run, world, coll)) md.push(`- ${note}`);
      if (notesFor(run, world, coll).length) md.push('');
      md.push(`| ${header.join(' | ')} |`, `|${header.map(() => '---:|').join('')}`);
      for (const r of rows) md.push(`| ${r.join(' | ')} |`);
      md.push('');
    }
  }
  fs.writeFileSync(file, md.join('\n'));
}

module.exports = { printTables, writeMarkdown, BUS, TITLES };
