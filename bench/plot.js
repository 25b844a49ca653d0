// SPDX-License-Identifier: Apache-2.0
// The collectives bench's plot: busbw against message size, one panel per collective and world
// size, one line per implementation plus memcpy, drawn by vega-lite and rendered to SVG by vega
// in Node (no browser, no canvas).
'use strict';

const fs = require('node:fs');
const { BUS, TITLES } = require('./report');

/** One data point per implementation, collective, world size and message size. */
function pointsOf(run) {
  const points = [];
  for (const world of run.worlds) {
    const ranks = `${world.n} ranks`;
    for (const [name, job] of Object.entries(world.byImpl)) {
      const impl = run.impls[name];
      const label = impl.version ? `${impl.title} (${impl.version})` : impl.title;
      for (const r of job.results) {
        const busbw = (r.bytes / (r.us * 1e3)) * BUS[r.coll].factor(world.n);
        points.push({ impl: label, coll: TITLES[r.coll], ranks, bytes: r.bytes, busbw });
      }
    }
    for (const coll of run.opts.colls) {
      for (const [bytes, gbs] of Object.entries(world.memcpy)) {
        points.push({ impl: 'memcpy, one core', coll: TITLES[coll], ranks, bytes: Number(bytes),
          busbw: gbs });
      }
    }
  }
  return points.filter((p) => p.busbw > 0 && Number.isFinite(p.busbw));
}

// Axis labels in binary units: 1K, 64K, 1M, 256M.
const BINARY_LABEL = "datum.value >= 1048576 ? datum.value / 1048576 + 'M' : " +
  "datum.value >= 1024 ? datum.value / 1024 + 'K' : datum.value";

function specOf(run) {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `nodeccl vs peers: busbw against size (${run.machine.split(',')[0]}; ` +
      `nodeccl transport: ${run.transport})`,
    data: { values: pointsOf(run) },
    facet: {
      row: { field: 'ranks', type: 'nominal', title: null },
      column: { field: 'coll', type: 'nominal', title: null, sort: run.opts.colls.map((c) =>
        TITLES[c]) },
    },
    spec: {
      width: 260,
      height: 200,
      mark: { type: 'line', point: { size: 12 }, strokeWidth: 1.5 },
      encoding: {
        x: { field: 'bytes', type: 'quantitative', title: 'size (bytes)',
          scale: { type: 'log', base: 2 }, axis: { labelExpr: BINARY_LABEL, tickCount: 8 } },
        y: { field: 'busbw', type: 'quantitative', title: 'busbw (GB/s)',
          scale: { type: 'log' }, axis: { format: '~g' } },
        color: { field: 'impl', type: 'nominal', title: null },
        strokeDash: { condition: { test: "indexof(datum.impl, 'memcpy') >= 0", value: [4, 3] },
          value: [1, 0] },
      },
    },
    resolve: { scale: { y: 'shared' } },
    config: { legend: { orient: 'bottom', labelLimit: 0, columns: 4 } },
  };
}

/** Renders the plot to an SVG file. */
async function writePlot(run, file) {
  const vega = require('vega');
  const vegaLite = require('vega-lite');
  const compiled = vegaLite.compile(specOf(run)).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  fs.writeFileSync(file, await view.toSVG());
  view.finalize();
}

module.exports = { writePlot };
