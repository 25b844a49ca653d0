// SPDX-License-Identifier: Apache-2.0
// nodeccl/tfjs across real processes (fixture test/fixtures/train-tfjs.js): broadcastVariables,
// DistributedOptimizer in a custom loop over a tfjs and a fused optimizer keeping every rank's
// weights identical while each rank sees other data, and model.fit validation refused.
import { describe, expect, it } from 'vitest';
import { lastJson, runRanks } from '../helpers/world';

describe('nodeccl/tfjs', () => {
  it('keeps 3 ranks on identical weights and refuses fit() validation', async () => {
    const results = await runRanks('train-tfjs.js', 3, { timeoutMs: 90_000 });
    for (const r of results) {
      expect(r.code, r.stderr).toBe(0);
      const out = lastJson(r) as Record<string, any>;
      expect(out.broadcast).toEqual([1, 1, 1, 1, 1]);   // rank 0's fill(1)
      for (const key of ['tfjsAdam', 'fusedAdam']) {
        expect(out[key].maxSpread, key).toBe(0);         // bitwise equal after every step
        expect(out[key].iterations).toBe(20);
        expect(out[key].loss).toBeLessThan(out[key].firstLoss);
      }
      expect(out.validation.code).toBe('ERR_NODECCL_INVALID_ARGUMENT');
      expect(out.validation.message).toMatch(/validationData\/validationSplit/);
    }
  });
});
