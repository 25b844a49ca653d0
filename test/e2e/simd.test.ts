// SPDX-License-Identifier: Apache-2.0
// The SIMD reduction variants through real processes: every collective, dtype and op with the
// kernels forced by NODECCL_SIMD to each variant this CPU runs (the choice logged at info), and
// a clear error for a value that names no variant.
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { lastJson, runRanks } from '../helpers/world';

// The variants this CPU can run, read the way the kernels' CPU check sees them (Linux only;
// elsewhere just the portable one).
function supportedLevels(): string[] {
  const levels = ['scalar'];
  let flags = '';
  try {
    flags = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n')
      .find((l) => l.startsWith('flags')) ?? '';
  } catch {
    return levels;
  }
  const has = (f: string) => new RegExp(`\\b${f}\\b`).test(flags);
  if (has('avx2') && has('fma') && has('f16c')) levels.push('avx2');
  if (levels.includes('avx2') && ['avx512f', 'avx512bw', 'avx512vl', 'avx512dq'].every(has)) {
    levels.push('avx512');
  }
  return levels;
}

describe('NODECCL_SIMD', () => {
  for (const level of supportedLevels()) {
    it(`${level}: all collectives, dtypes and ops are correct at 2 ranks`, async () => {
      const env = { NODECCL_SIMD: level, COUNTS: '1,13,1000', NODECCL_DEBUG: 'info',
        NODECCL_DEBUG_SUBSYS: 'reduce' };
      const results = await runRanks('collectives.js', 2, { env, timeoutMs: 100_000 });
      for (const r of results) {
        const out = lastJson(r);
        expect(out.error, r.stderr).toBeUndefined();
        expect(out.failures).toEqual([]);
        expect(out.checks).toBeGreaterThan(100);
        expect(r.stderr).toContain(`[reduce] INFO SIMD kernels: ${level} (from NODECCL_SIMD`);
      }
    });
  }

  it('rejects a value that names no variant, saying which ones this CPU runs', async () => {
    const results = await runRanks('simd-bad-env.js', 2, { env: { NODECCL_SIMD: 'sse9' },
      timeoutMs: 60_000 });
    for (const r of results) {
      const out = lastJson(r);
      expect(out.error, r.stderr).toBeUndefined();
      expect(out.code).toBe('ERR_NODECCL_INVALID_ARGUMENT');
      expect(out.message).toContain("NODECCL_SIMD='sse9' is not one of auto, scalar, avx2, avx512");
    }
  });
});
