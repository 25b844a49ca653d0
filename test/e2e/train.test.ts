// SPDX-License-Identifier: Apache-2.0
// The training helpers across real processes (fixture test/fixtures/train-dp.js): bucketed
// reduction with gradients marked in a different order on every rank, noSync accumulation,
// custom and float16 hooks, ZeRO-1 against the unsharded optimizer, and local SGD averaging.
import { describe, expect, it } from 'vitest';
import { lastJson, runRanks, type RankResult } from '../helpers/world';

/** Runs one fixture case on n ranks; every rank must exit 0 and print its JSON line. */
async function runCase(name: string, n: number): Promise<Record<string, any>[]> {
  const results = await runRanks('train-dp.js', n, { args: [name], timeoutMs: 60_000 });
  const explain = (r: RankResult) => `rank ${r.rank} exited ${r.code}\n${r.stderr}`;
  for (const r of results) expect(r.code, explain(r)).toBe(0);
  return results.map((r) => lastJson(r) as Record<string, any>);
}

describe('DataParallel buckets', () => {
  for (const n of [2, 3]) {
    it(`reduce exactly, in bucket order, whatever order gradients arrive in (${n} ranks)`,
      async () => {
        for (const out of await runCase('buckets', n)) {
          // Sizes [5, 1000, 3, 2500, 1, 0, 300, 64] in 4 KiB buckets, packed last to first.
          expect(out.members).toEqual([[7, 6, 5, 4], [3], [2, 1, 0]]);
          // Step 0 in backward order, steps 1-2 in a per-rank random order, one gradient
          // unmarked on rank 1 at step 1 (zero there): all exact integer sums.
          expect(out.errors).toEqual([0, 0, 0]);
          // The hook saw buckets 0, 1, 2 at every step, on every rank.
          expect(out.launches.map((l: { bucket: number }) => l.bucket))
            .toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
          // Overlap: in backward order bucket 0 ([7, 6, 5, 4]) starts after the 4th gradient,
          // while the other 4 are still to come; the default path issues bucket 1 after the
          // 5th (gradient 3) and bucket 2 after the 8th.
          expect(out.launches[0]).toEqual({ step: 0, bucket: 0, marked: 4 });
          expect(out.issued).toEqual([4, 5, 8]);
        }
      });
  }

  it('accumulate under noSync() with no communication, then reduce the sum (3 ranks)',
    async () => {
      for (const out of await runCase('noSync', 3)) {
        expect(out.errorDefault).toBe(0);
        expect(out.errorHook).toBe(0);
        expect(out.callsDuring).toEqual([0, 0, 0, 0]);   // nothing reduced inside noSync()
        expect(out.hookCallsAfter).toBe(out.buckets);    // one reduction per bucket at the end
      }
    });

  it('reduce through the float16 compression hook (2 ranks)', async () => {
    for (const out of await runCase('fp16', 2)) expect(out.error).toBe(0);
    // The compression option (float16 codec, exact for these integer gradients).
    for (const out of await runCase('compressed', 3)) expect(out.error).toBe(0);
  });
});

describe('ZeroRedundancyOptimizer', () => {
  for (const n of [2, 3]) {
    it(`matches the unsharded optimizer and holds 1/${n} of its state (${n} ranks)`,
      async () => {
        for (const out of await runCase('zero', n)) {
          // Integer gradients: both routes see the same averaged gradient, so bit for bit.
          expect(out['adam-integer'].bitwise).toBe(true);
          expect(out['sgd-integer'].bitwise).toBe(true);
          // Random gradients: reduce-scatter and all-reduce may add in other orders.
          expect(out['adam-random'].maxError).toBeLessThan(1e-6);
          expect(out['sgd-random'].maxError).toBeLessThan(1e-6);
          // 1,021 elements: ceil(1021 / n) per rank; Adam keeps 2 buffers, SGD+momentum 1.
          const shard = Math.ceil(1021 / n);
          expect(out['adam-bytes']).toEqual({ sharded: 2 * 4 * shard, unsharded: 2 * 4 * 1021,
            shardSize: shard });
          expect(out['sgd-bytes']).toEqual({ sharded: 4 * shard, unsharded: 4 * 1021,
            shardSize: shard });
        }
      });
  }
});

describe('LocalSGD', () => {
  it('averages the weights every 3 steps and leaves them alone in between (3 ranks)',
    async () => {
      for (const out of await runCase('localSgd', 3)) {
        expect(out.averagings).toBe(2);
        for (const e of out.log) {
          expect(e.averaged).toBe(e.step % 3 === 0);
          if (e.averaged) {
            expect(e.errorToMean).toBeLessThan(1e-6);
            expect(e.spread).toBe(0);              // identical on every rank
          } else {
            expect(e.spread).toBeGreaterThan(0.1);  // each rank stepped on its own gradients
          }
        }
      }
    });
});
