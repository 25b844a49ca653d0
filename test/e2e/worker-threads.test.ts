// SPDX-License-Identifier: Apache-2.0
// The addon in worker_threads: each worker loads its own instance; two workers can be two
// ranks of one job; terminating a worker with an operation in flight does not crash the process.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { init } from '../../lib/index';
import { FIXTURES, freePort } from '../helpers/world';

const SCRIPT = path.join(FIXTURES, 'worker-rank.js');

function messages(w: Worker): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const got: Record<string, unknown>[] = [];
    w.on('message', (m) => got.push(m));
    w.on('error', reject);
    w.on('exit', () => resolve(got));
  });
}

describe('worker_threads', () => {
  it('two workers are two ranks of one job', async () => {
    const port = await freePort();
    const workers = [0, 1].map((rank) =>
      new Worker(SCRIPT, { workerData: { rank, size: 2, port } }));
    const out = await Promise.all(workers.map(messages));
    for (const m of out) {
      expect(m.find((x) => x.error)).toBeUndefined();
      expect(m.find((x) => x.values)?.values).toEqual([3, 30]);
    }
  });

  it('terminating a worker whose rendezvous is pending leaves the process healthy', async () => {
    const port = await freePort();
    // Rank 0 of a world of 2 whose rank 1 never comes: init blocks until terminated.
    const w = new Worker(SCRIPT, { workerData: { rank: 0, size: 2, port } });
    await new Promise((r) => setTimeout(r, 300));
    await w.terminate();
    // And a fresh pair still works in the same process afterwards.
    const port2 = await freePort();
    const pair = [0, 1].map((rank) =>
      new Worker(SCRIPT, { workerData: { rank, size: 2, port: port2 } }));
    const out = await Promise.all(pair.map(messages));
    expect(out[0].find((x) => x.values)?.values).toEqual([3, 30]);
  });

  it('terminating a worker blocked in a collective leaves the process healthy', async () => {
    const port = await freePort();
    const a = new Worker(SCRIPT, { workerData: { rank: 0, size: 2, port } });
    const b = new Worker(SCRIPT, { workerData: { rank: 1, size: 2, port } });
    // Let both join, then terminate them while (possibly) inside all-reduce / destroy.
    await new Promise<void>((resolve) => {
      let joined = 0;
      const onMsg = (m: Record<string, unknown>) => { if (m.joined && ++joined === 2) resolve(); };
      a.on('message', onMsg);
      b.on('message', onMsg);
    });
    const codes = await Promise.all([a.terminate(), b.terminate()]);
    expect(codes.every((c) => typeof c === 'number')).toBe(true);
    // The main thread's own instance still works.
    const comm = await init({ rank: 0, worldSize: 1 });
    const x = new Float32Array([2]);
    await comm.allReduce(x);
    await comm.destroy();
    expect(x[0]).toBe(2);
  });
});
