// SPDX-License-Identifier: Apache-2.0
// The MNIST examples' other training modes against one process: DataParallel buckets and ZeRO-1
// (examples/mnist/train.js --mode dp|zero), local SGD averaging after every step, and the tfjs
// model.fit variant (train-tfjs.js). n ranks sharing a global batch must end where one rank
// on the whole batch ends, up to float32 rounding, with every rank bitwise identical.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runRanks, type RankResult } from '../helpers/world';

const EXAMPLES = path.join(ROOT, 'examples', 'mnist');
const COMMON = ['--steps', '3', '--batch-size', '64', '--seed', '7', '--no-eval'];
const ADAM = ['--optimizer', 'adam', '--lr', '3e-3'];
const SGD = ['--optimizer', 'sgd', '--lr', '0.1', '--momentum', '0.9'];
const PLAIN_SGD = ['--optimizer', 'sgd', '--lr', '0.1'];

let dir = '';
let runs = 0;

/** Runs `script` on n ranks with `args`; returns every rank's dumped parameters. */
async function trainOn(script: string, n: number, args: string[]): Promise<Float32Array[]> {
  const dump = path.join(dir, `run${runs++}-rank{rank}.bin`);
  const results = await runRanks(path.join(EXAMPLES, script), n,
    { args: [...args, '--dump-params', dump], timeoutMs: 90_000 });
  const explain = (r: RankResult) => `rank ${r.rank} of ${n} exited with ${r.code}\n` +
    `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  for (const r of results) expect(r.code, explain(r)).toBe(0);
  return results.map((r) => {
    const buf = fs.readFileSync(dump.replace('{rank}', String(r.rank)));
    return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  });
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Every rank bitwise equal to rank 0, and rank 0 within `tol` of the one-process run. */
function expectEquivalent(ranks: Float32Array[], single: Float32Array, tol: number): void {
  expect(maxAbsDiff(ranks[0], single)).toBeLessThan(tol);
  for (let r = 1; r < ranks.length; r++) {
    expect(Buffer.from(ranks[r].buffer).equals(Buffer.from(ranks[0].buffer)),
      `rank ${r} differs from rank 0`).toBe(true);
  }
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-train-mnist-'));
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('train.js --mode dp and --mode zero', () => {
  const single: Record<string, Float32Array> = {};
  beforeAll(async () => {
    [single.adam] = await trainOn('train.js', 1, [...COMMON, ...ADAM]);
    [single.sgd] = await trainOn('train.js', 1, [...COMMON, ...SGD]);
  });

  // 0.1 MiB buckets (26,214 floats), packed last to first: [stats, b2, W2, b1] (1,420
  // floats), then W1 (100,352) alone: two all-reduces per step. The shares are summed in
  // another order than one rank's matmul sums them: ~1e-7 measured (as test/e2e/mnist.test.ts).
  const cases = [
    { mode: 'dp', n: 2, opt: 'adam' }, { mode: 'dp', n: 3, opt: 'sgd' },
    { mode: 'zero', n: 2, opt: 'adam' }, { mode: 'zero', n: 3, opt: 'sgd' },
  ] as const;
  for (const { mode, n, opt } of cases) {
    it(`${mode}, ${n} ranks, ${opt}: matches one rank`, async () => {
      const ranks = await trainOn('train.js', n, [...COMMON, ...(opt === 'adam' ? ADAM : SGD),
        '--mode', mode, '--bucket-mb', '0.1']);
      expectEquivalent(ranks, single[opt], 1e-5);
    });
  }
});

describe('train.js --mode local-sgd', () => {
  it('averaging after every step is synchronous SGD (2 ranks, equal shares)', async () => {
    // Without momentum, mean_r(p - lr g_r) = p - lr mean_r(g_r): the global mean gradient.
    const [single] = await trainOn('train.js', 1, [...COMMON, ...PLAIN_SGD]);
    const ranks = await trainOn('train.js', 2, [...COMMON, ...PLAIN_SGD, '--mode', 'local-sgd',
      '--local-steps', '1']);
    expectEquivalent(ranks, single, 1e-5);
  });
});

describe('train-tfjs.js (tf.layers + model.fit + nodeccl/tfjs)', () => {
  const args = ['--epochs', '1', '--train-count', '192', '--batch-size', '64', '--no-shuffle',
    '--seed', '5'];
  for (const opt of ['sgd', 'fused-adam']) {
    it(`2 ranks at batch 32 match 1 rank at batch 64 (${opt})`, async () => {
      const optArgs = ['--optimizer', opt, '--lr', opt === 'sgd' ? '0.1' : '3e-3'];
      const [single] = await trainOn('train-tfjs.js', 1, [...args, ...optArgs]);
      const ranks = await trainOn('train-tfjs.js', 2, [...args, ...optArgs]);
      expectEquivalent(ranks, single, 1e-5);
    });
  }
});
