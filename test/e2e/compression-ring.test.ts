// SPDX-License-Identifier: Apache-2.0
// The reduce-scatter (ring) form of the compressed all-reduce across real processes: every
// codec over uneven sizes, 2 and 3 ranks, the error-feedback invariant, float16 sums beyond
// 65504; every rank must end with bitwise the same results. Also the automatic choice of form.
import { describe, expect, it } from 'vitest';
import { compressedAllReducePlan } from '../../lib/quant';
import { lastJson, runRanks } from '../helpers/world';

describe('allReduce with compression, ring form', () => {
  for (const n of [2, 3]) {
    it(`${n} ranks`, async () => {
      const results = await runRanks('compression-ring.js', n, { timeoutMs: 60_000 });
      const digests = new Set<unknown>();
      for (const r of results) {
        const out = lastJson(r);
        expect(out.error, r.stderr).toBeUndefined();
        expect(out.failures).toEqual([]);
        expect(out.checks).toBeGreaterThan(5000);
        expect(out.plan).toBe(n === 2 ? 'allgather' : 'ring');
        expect(r.code).toBe(0);
        digests.add(out.digest);
      }
      expect(digests.size).toBe(1);
    });
  }

  it('picks the form that sends fewer bytes', () => {
    // int8, block 256, 1000 elements: E = 4 * 4 scales + 1000 = 1016 bytes. On 3 ranks the
    // chunks are 333, 333, 334 elements: 341, 341, 342 bytes; rank 0 sends chunks 1 and 2 in
    // the ring (683) and its padded final chunk to 2 ranks (2 * 342): 1367 < 2 * 1016.
    expect(compressedAllReducePlan('int8', 1000, 3)).toEqual(
      { algorithm: 'ring', allgatherBytes: 2032, ringBytes: 1367 });
    // 2 ranks: chunks of 500 encode to 508 bytes; the ring sends one hop and one final chunk,
    // 1016 bytes, as many as the all-gather: ties go to the all-gather.
    expect(compressedAllReducePlan('int8', 1000, 2).algorithm).toBe('allgather');
    expect(compressedAllReducePlan('int8', 1000, 2, 'ring').algorithm).toBe('ring');
    expect(compressedAllReducePlan('sign1', 1 << 20, 8).algorithm).toBe('ring');
  });
});
