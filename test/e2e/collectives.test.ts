// SPDX-License-Identifier: Apache-2.0
// Real processes over loopback: every collective, dtype and op against a reference, for world
// sizes 1-4 (the C++ suite covers up to 8 ranks as threads), and a killed peer.
import { describe, expect, it } from 'vitest';
import { lastJson, runRanks } from '../helpers/world';

describe('collectives across processes', () => {
  for (const n of [1, 2, 3, 4]) {
    it(`all collectives, all dtypes and ops, ${n} rank(s)`, async () => {
      const env: Record<string, string> = n === 4 ? { COUNTS: '0,1,13,1000' } : {};
      const results = await runRanks('collectives.js', n, { env, timeoutMs: 100_000 });
      for (const r of results) {
        const out = lastJson(r);
        expect(out.error, r.stderr).toBeUndefined();
        expect(out.failures).toEqual([]);
        expect(out.checks).toBeGreaterThan(100);
        expect(r.code).toBe(0);
      }
    });
  }
});

describe('a peer that dies', () => {
  it('fails the pending all-reduce on every other rank, naming the lost rank', async () => {
    const results = await runRanks('peer-lost.js', 3, { env: { KILL_RANK: '1' } });
    expect(results[1].signal).toBe('SIGKILL');
    for (const r of [results[0], results[2]]) {
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
      const first = lines.find((l) => l.outcome);
      expect(first.outcome, r.stderr).toBe('error');
      expect(['ERR_NODECCL_PEER_LOST', 'ERR_NODECCL_ABORTED']).toContain(first.code);
      expect(first.message).toMatch(/rank 1\b/);
      expect(first.ms).toBeLessThan(5000);  // well within the 20 s timeout
      const next = lines.find((l) => l.next);
      expect(next.next).toBe('error');
    }
  });
});
