// SPDX-License-Identifier: Apache-2.0
// The MNIST example's data-parallel arithmetic: n ranks sharing a global batch must take the
// same optimizer steps as one rank on the whole batch, and end with bitwise-identical weights.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runRanks, type RankResult } from '../helpers/world';

const TRAIN = path.join(ROOT, 'examples', 'mnist', 'train.js');
const STEPS = 3;
const BATCH = 64;  // global; 32 rows per rank on 2 ranks, 21/21/22 on 3
const SEED = 7;

// Adam is almost blind to a uniformly mis-scaled gradient (its step is g / sqrt(v)); SGD's
// step is proportional to g, so it also catches a sum taken for an average.
const OPTIMIZERS = {
  adam: { lr: 3e-3, args: ['--optimizer', 'adam', '--lr', '3e-3'] },
  sgd: { lr: 0.1, args: ['--optimizer', 'sgd', '--lr', '0.1', '--momentum', '0.9'] },
} as const;
type OptimizerName = keyof typeof OPTIMIZERS;

const requireExample = createRequire(path.join(ROOT, 'examples', 'mnist', 'model.js'));
const model = requireExample('./model.js') as {
  layout(hidden: number): { size: number };
  initParams(flat: Float32Array, lay: unknown, seed: number): void;
};

let dir = '';

/** Trains STEPS steps on `n` ranks; returns every rank's final parameters. */
async function trainOn(n: number, optimizer: OptimizerName): Promise<Float32Array[]> {
  const dump = path.join(dir, `${optimizer}-np${n}-rank{rank}.bin`);
  const results = await runRanks(TRAIN, n, {
    args: ['--steps', String(STEPS), '--batch-size', String(BATCH), '--seed', String(SEED),
      ...OPTIMIZERS[optimizer].args, '--no-eval', '--dump-params', dump],
    timeoutMs: 60_000,
  });
  const explain = (r: RankResult) => `rank ${r.rank} of ${n} exited with ${r.code}` +
    `${r.signal ? ` (${r.signal})` : ''}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
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

function bitwiseEqual(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength)
    .equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-mnist-'));
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

for (const optimizer of Object.keys(OPTIMIZERS) as OptimizerName[]) {
  describe(`mnist example, ${optimizer}: data-parallel steps`, () => {
    const { lr } = OPTIMIZERS[optimizer];
    let single: Float32Array;

    beforeAll(async () => {
      [single] = await trainOn(1, optimizer);
    });

    if (optimizer === 'adam') {
      it('one rank actually trains: every step moves some weight by about lr', () => {
        // Adam's first step moves each weight with a nonzero gradient by lr * g / (|g| + eps),
        // so after 3 steps the largest move is between lr and about 3 lr.
        const lay = model.layout(128);
        const initial = new Float32Array(lay.size);
        model.initParams(initial, lay, SEED);
        const moved = maxAbsDiff(single, initial);
        expect(moved).toBeGreaterThan(0.9 * lr);
        expect(moved).toBeLessThan(3.5 * lr);
      });
    }

    for (const n of [2, 3]) {
      it(`${n} ranks sharing a global batch of ${BATCH} match 1 rank on all ${BATCH} rows`,
        async () => {
          const ranks = await trainOn(n, optimizer);

          // The shares are summed in another order than one rank's matmul sums them, so only
          // float32 rounding may differ: ~1e-7 measured. A mean of per-rank means (unequal
          // shares on 3 ranks) is off by ~5e-4 with SGD, a sum taken for the average by ~3e-2.
          expect(maxAbsDiff(ranks[0], single)).toBeLessThan(1e-5);
          for (let r = 1; r < n; r++) {
            expect(bitwiseEqual(ranks[r], ranks[0]), `rank ${r} differs from rank 0`).toBe(true);
          }
        });
    }
  });
}
