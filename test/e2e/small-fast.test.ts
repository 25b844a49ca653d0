// SPDX-License-Identifier: Apache-2.0
// The small-message fast path across processes: tiny collectives issued back-to-back without
// awaiting give correct results and settle in call order, whether they complete on the JS
// thread (shared memory, the default) or all hop to the worker (the fast path turned off, or
// over TCP where it never applies). No timing assertions: speed is bench/latency.js's job.
import { describe, expect, it } from 'vitest';
import { lastJson, runRanks } from '../helpers/world';

describe('small collectives issued without awaiting', () => {
  const cases: Array<[string, number, Record<string, string>]> = [
    ['shared memory, fast path on', 2, {}],
    ['shared memory, fast path on', 3, {}],
    ['shared memory, fast path off', 2, { NODECCL_FAST_SPIN_US: '0' }],
    ['TCP (no fast path), direct forced', 3, { NODECCL_TRANSPORT: 'tcp', NODECCL_ALGO: 'direct' }],
    ['shared memory, NODECCL_ALGO=ring (no direct algorithm)', 3, { NODECCL_ALGO: 'ring' }],
  ];
  for (const [what, n, env] of cases) {
    it(`${what}, ${n} ranks`, async () => {
      const results = await runRanks('small-fast.js', n, { env, timeoutMs: 60_000 });
      for (const r of results) {
        const out = lastJson(r);
        expect(out.error, r.stderr).toBeUndefined();
        expect(out.failures).toEqual([]);
        expect(out.checks).toBe(25 * 6);
        expect(out.order).toBe(true);
        expect(r.code).toBe(0);
      }
    });
  }
});
