// SPDX-License-Identifier: Apache-2.0
// Compressed all-reduce across real processes: every codec over uneven sizes within its error
// bound, error feedback over several steps, for 2 and 3 ranks (odd world size); every rank must
// end with bitwise the same results.
import { describe, expect, it } from 'vitest';
import { lastJson, runRanks } from '../helpers/world';

describe('allReduce with compression', () => {
  for (const n of [2, 3]) {
    it(`${n} ranks`, async () => {
      const results = await runRanks('compression.js', n, { timeoutMs: 60_000 });
      const digests = new Set<unknown>();
      for (const r of results) {
        const out = lastJson(r);
        expect(out.error, r.stderr).toBeUndefined();
        expect(out.failures).toEqual([]);
        expect(out.checks).toBeGreaterThan(1000);
        expect(r.code).toBe(0);
        digests.add(out.digest);
      }
      expect(digests.size).toBe(1);
    });
  }
});
