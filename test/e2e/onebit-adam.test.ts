// SPDX-License-Identifier: Apache-2.0
// 1-bit Adam across real processes (2 ranks: all-gather form; 3 ranks: ring form): equal to
// plain distributed Adam bit for bit during warm-up, then converging on a linear regression
// with the momentum sent in 1 bit, parameters bitwise identical on every rank.
import { describe, expect, it } from 'vitest';
import { OneBitAdam, type OneBitAdamComm } from '../../lib/onebit-adam';
import { lastJson, runRanks } from '../helpers/world';

describe('OneBitAdam', () => {
  for (const n of [2, 3]) {
    it(`${n} ranks`, async () => {
      const results = await runRanks('onebit-adam.js', n, { timeoutMs: 60_000 });
      const digests = new Set<unknown>();
      for (const r of results) {
        const out = lastJson(r);
        expect(out.error, r.stderr).toBeUndefined();
        expect(out.failures).toEqual([]);
        // Initial loss ~8; 400 steps (20 warm-up) reach ~4e-4 (2 ranks), ~1.2e-3 (3 ranks).
        expect(out.initialLoss).toBeGreaterThan(5);
        expect(out.finalLoss).toBeLessThan(1e-2);
        expect(r.code).toBe(0);
        digests.add(out.digest);
      }
      expect(digests.size).toBe(1);
    });
  }

  it('checks its arguments', () => {
    const comm = { rank: 0, size: 1 } as unknown as OneBitAdamComm;
    expect(() => new OneBitAdam(comm, [new Float64Array(3) as never]))
      .toThrow(/float32 only/);
    expect(() => new OneBitAdam(comm, [new Float32Array(3)], { warmupSteps: 0 }))
      .toThrow(/warmupSteps must be a whole number >= 1/);
    expect(() => new OneBitAdam(comm, [new Float32Array(3)], { warmUpSteps: 5 } as never))
      .toThrow(/warmupSteps/);
    const opt = new OneBitAdam(comm, [new Float32Array(3)]);
    return expect(opt.step([new Float32Array(2)])).rejects.toThrow(/3 elements/);
  });
});
