// SPDX-License-Identifier: Apache-2.0
// examples/mnist/train-ps.js as real processes (`nodeccl-run --servers 2 -np 2`): sync mode
// ends where train.js's all-reduce training of the same steps ends, and async mode with
// staleness 0 and 1 applies every push (versions visible to the workers) and learns.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runRanks } from '../helpers/world';

const RUN = path.join(ROOT, 'dist', 'cli', 'run.js');
const EXAMPLES = path.join(ROOT, 'examples', 'mnist');
const COMMON = ['--batch-size', '64', '--seed', '7'];

let dir = '';
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-train-ps-'));
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs train-ps.js on 2 servers and 2 workers; resolves with the exit code and all output. */
function psJob(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RUN, '--servers', '2', '-np', '2', '--grace', '10',
      process.execPath, path.join(EXAMPLES, 'train-ps.js'), ...args],
    { cwd: ROOT, env: { ...process.env, NODECCL_TIMEOUT_MS: '30000' },
      stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

function readFloats(file: string): Float32Array {
  const buf = fs.readFileSync(file);
  return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Worker 0's "final shard versions a..b" line, as [a, b]. */
function finalVersions(out: string): number[] {
  const m = /^\[0\] trained \d+ steps .* final shard versions (\d+)\.\.(\d+)$/m.exec(out);
  expect(m, out).not.toBeNull();
  return [Number(m![1]), Number(m![2])];
}

describe('examples/mnist/train-ps.js, 2 servers × 2 workers', () => {
  // Both sides draw the same batches, compute the same share gradients with the same tfjs
  // code, and average 2 float32 values the same way (sum, then divide): 0 measured.
  it('sync mode: 3 steps equal all-reduce training of the same steps', async () => {
    const args = [...COMMON, '--steps', '3', '--no-eval'];
    const psDump = path.join(dir, 'ps-{rank}.bin');
    const arDump = path.join(dir, 'ar-{rank}.bin');
    const [job, ar] = await Promise.all([
      psJob([...args, '--dump-params', psDump]),
      runRanks(path.join(EXAMPLES, 'train.js'), 2,
        { args: [...args, '--dump-params', arDump], timeoutMs: 90_000 }),
    ]);
    expect(job.code, job.out).toBe(0);
    for (const r of ar) expect(r.code, r.stderr).toBe(0);

    expect(finalVersions(job.out)).toEqual([3, 3]); // one version per synchronous step
    const ps = [0, 1].map((r) => readFloats(psDump.replace('{rank}', String(r))));
    const ref = readFloats(arDump.replace('{rank}', '0'));
    expect(maxAbsDiff(ps[0], ref)).toBeLessThan(1e-6);
    expect(Buffer.from(ps[1].buffer).equals(Buffer.from(ps[0].buffer))).toBe(true);
  });

  // Each push is its own Adam step: 2 workers × 12 steps = 24 versions on each server. Twelve
  // half-batches of 32 digits already take the held-out accuracy far above chance (10%).
  for (const k of [0, 1]) {
    it(`async mode, staleness ${k}: every push applied, and it learns`, async () => {
      const dump = path.join(dir, `async${k}-{rank}.bin`);
      const job = await psJob([...COMMON, '--steps', '12', '--mode', 'async', '--staleness',
        String(k), '--dump-params', dump]);
      expect(job.code, job.out).toBe(0);
      expect(job.out).toMatch(new RegExp(`^\\[0\\] mnist-ps: .*staleness ${k},`, 'm'));
      expect(finalVersions(job.out)).toEqual([24, 24]);
      const acc = /^\[0\] held-out accuracy ([\d.]+)%/m.exec(job.out);
      expect(acc, job.out).not.toBeNull();
      expect(Number(acc![1])).toBeGreaterThan(50);
      // After the closing barrier both workers pulled the same final weights.
      const [a, b] = [0, 1].map((r) => readFloats(dump.replace('{rank}', String(r))));
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    });
  }
});
