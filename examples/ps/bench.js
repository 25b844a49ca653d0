// SPDX-License-Identifier: Apache-2.0
// Parameter-server throughput: push and pull MB/s for one model (default 16 MiB, one key split
// over the servers) and training steps/s (push + pull) in sync and async mode.
//   node dist/cli/run.js --servers 2 -np 2 node examples/ps/bench.js [--mb 16] [--iters 20]
//       [--mode sync|async] [--copy]      (--copy: Node's chunked reads, copied into place)
//   node dist/cli/run.js -np 2 node examples/ps/bench.js --native [--mb 16]
//       (the baseline: nodeccl's native send/recv of the same bytes between two ranks)
const { init, isPSJob, psRole, PSServer, PSWorker, SGD } = require('nodeccl');

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : args[i + 1];
};
const MB = Number(opt('mb', 16));
const ITERS = Number(opt('iters', 20));
const MODE = opt('mode', 'sync');
const COPY = args.includes('--copy');
const floats = Math.round((MB * 2 ** 20) / 4);
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mbps = (ms) => (floats * 4) / 2 ** 20 / (ms / 1000);

async function timed(fn) {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function worker() {
  const params = { w: new Float32Array(floats) };
  const grads = { w: new Float32Array(floats).fill(1e-6) };
  const w = await PSWorker.connect({ params, zeroCopy: !COPY });
  const pulls = [];
  const pushes = [];
  for (let i = 0; i < 3; i++) await w.pull(); // warm up
  for (let i = 0; i < ITERS; i++) pulls.push(await timed(() => w.pull()));
  for (let i = 0; i < ITERS; i++) pushes.push(await timed(() => w.push(grads)));
  const t0 = Date.now();
  for (let i = 0; i < ITERS; i++) {
    await w.push(grads);
    await w.pull();
  }
  const stepsPerS = ITERS / ((Date.now() - t0) / 1000);
  console.log(JSON.stringify({ worker: w.rank, workers: w.numWorkers, servers: w.numServers,
    mode: MODE, zeroCopy: !COPY, MiB: MB, pullMs: median(pulls).toFixed(2),
    pullMBps: mbps(median(pulls)).toFixed(0), pushMs: median(pushes).toFixed(2),
    pushMBps: mbps(median(pushes)).toFixed(0), stepsPerS: stepsPerS.toFixed(2) }));
  await w.close();
}

async function native() {
  const comm = await init();
  const buf = new Float32Array(floats);
  const times = [];
  for (let i = 0; i < ITERS + 3; i++) {
    const ms = await timed(() => (comm.rank === 0 ? comm.send(buf, 1) : comm.recv(buf, 0)));
    if (i >= 3) times.push(ms);
  }
  if (comm.rank === 1) {
    console.log(JSON.stringify({ native: 'send/recv', MiB: MB, ms: median(times).toFixed(2),
      MBps: mbps(median(times)).toFixed(0) }));
  }
  await comm.destroy();
}

async function main() {
  if (args.includes('--native')) return native();
  if (!isPSJob()) throw new Error('run under nodeccl-run --servers S -np N (see the header)');
  if (psRole().role === 'worker') return worker();
  const server = await PSServer.start({ mode: MODE, zeroCopy: !COPY,
    optimizer: (p) => new SGD(p, { lr: 1e-3 }) });
  await server.finished;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
