// SPDX-License-Identifier: Apache-2.0
// Teardown leaves nothing behind: many init / allReduce / destroy cycles in one process (worlds
// of 1 and 2), and 200 split / allReduce / destroy cycles of sub-communicators, must end with as
// many threads, /dev/shm segments and file descriptors as they began with, right after the last
// destroy() and once the dropped objects are collected, and RSS within a small tolerance. 100
// init cycles by default; NODECCL_LEAK_CYCLES=1000 runs the full count.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES, ROOT } from '../helpers/world';

interface Sample { fds: number; threads: number; shm: number; rssMiB: number }
interface Run {
  name: string; cycles: number; seconds: number;
  before: Sample; afterDestroy: Sample; after: Sample;
}

const CYCLES = process.env.NODECCL_LEAK_CYCLES ?? '100';

describe('resource leaks', () => {
  it(`${CYCLES} init and 200 sub-group cycles leak nothing`, () => {
    const r = spawnSync(process.execPath,
      ['--expose-gc', path.join(FIXTURES, 'leak-cycles.js')],
      { cwd: ROOT, env: { ...process.env, CYCLES }, encoding: 'utf8', timeout: 170_000 });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const runs = JSON.parse(line) as Run[];
    for (const run of runs) {
      console.log(`${run.name}: ${run.cycles} cycles in ${run.seconds} s; before ` +
        JSON.stringify(run.before) + ', right after the last destroy() ' +
        JSON.stringify(run.afterDestroy) + ', after gc ' + JSON.stringify(run.after));
      // destroy() itself releases the worker thread, the shm segments and the descriptors (no
      // garbage collection needed); a descriptor or two may still be closing on the store
      // server's side of the last cycle (its poll thread drops a connection after seeing EOF).
      expect(run.afterDestroy.shm, `${run.name} /dev/shm segments after destroy()`).toBe(0);
      expect(run.afterDestroy.fds, `${run.name} file descriptors right after destroy()`)
        .toBeLessThanOrEqual(run.before.fds + 2);
      expect(run.afterDestroy.threads, `${run.name} threads after destroy()`)
        .toBeLessThanOrEqual(run.before.threads);
      expect(run.after.fds, `${run.name} file descriptors`).toBeLessThanOrEqual(run.before.fds);
      expect(run.after.threads, `${run.name} threads`).toBeLessThanOrEqual(run.before.threads);
      expect(run.after.shm, `${run.name} /dev/shm segments`).toBe(0);
      // RSS moves with the allocator and the JS heap; a leak of even 16 KiB per cycle would
      // exceed this bound at 1,000 cycles, and 100 cycles of 160 KiB at the default count.
      expect(run.after.rssMiB - run.before.rssMiB, `${run.name} RSS growth (MiB)`)
        .toBeLessThan(16);
    }
  }, 180_000);
});
