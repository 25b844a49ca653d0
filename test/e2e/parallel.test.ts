// SPDX-License-Identifier: Apache-2.0
// Real processes over loopback: sub-communicators (split, group, a 2 x 2 mesh, odd splits,
// destroy cycles), allToAll, gather, scatter and batched sendRecv (test/fixtures/parallel-comm.js).
import { describe, expect, it } from 'vitest';
import { lastJson, runRanks } from '../helpers/world';

describe('model-parallel communication across processes', () => {
  for (const n of [1, 2, 3, 4]) {
    it(`sub-communicators and all-to-all family, ${n} rank(s)`, async () => {
      const results = await runRanks('parallel-comm.js', n, { timeoutMs: 60_000 });
      for (const r of results) {
        const out = lastJson(r);
        expect(out.error, r.stderr).toBeUndefined();
        expect(out.failures).toEqual([]);
        expect(out.checks).toBeGreaterThan(15);
        expect(r.code).toBe(0);
      }
    });
  }

  it('batched sendRecv and allToAll over TCP, 3 ranks', async () => {
    const results = await runRanks('parallel-comm.js', 3,
      { env: { NODECCL_TRANSPORT: 'tcp' }, timeoutMs: 60_000 });
    for (const r of results) {
      const out = lastJson(r);
      expect(out.error, r.stderr).toBeUndefined();
      expect(out.failures).toEqual([]);
      expect(r.code).toBe(0);
    }
  });
});
