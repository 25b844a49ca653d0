// SPDX-License-Identifier: Apache-2.0
// Tensor-parallel layers and the GPipe schedule against unsplit references
// (test/fixtures/parallel-layers.js), and the tensor-parallel and pipeline MNIST examples
// matching single-process training to float32 rounding over a few steps.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lastJson, ROOT, runRanks } from '../helpers/world';

describe('tensor-parallel layers and gpipe', () => {
  for (const n of [1, 2, 4]) {
    it(`match the unsplit computation, ${n} rank(s)`, async () => {
      const results = await runRanks('parallel-layers.js', n, { timeoutMs: 60_000 });
      for (const r of results) {
        const out = lastJson(r);
        expect(out.error, r.stderr).toBeUndefined();
        expect(out.failures).toEqual([]);
        expect(out.checks).toBeGreaterThan(8);
        expect(r.code).toBe(0);
      }
    });
  }
});

describe('MNIST model-parallel examples', () => {
  for (const script of ['train-tp.js', 'train-pipeline.js']) {
    it(`${script} on 2 ranks follows single-process training step by step`, async () => {
      const file = path.join(ROOT, 'examples', 'mnist', script);
      const results = await runRanks(file, 2,
        { args: ['--check', '--steps', '12', '--epochs', '1'], timeoutMs: 90_000 });
      for (const r of results) {
        const out = lastJson(r);
        expect(r.code, r.stderr).toBe(0);
        expect(out.steps).toBe(12);
        // Weights after 12 SGD steps agree with the unsplit run to float32 rounding.
        expect(out.maxDiff).toBeGreaterThanOrEqual(0);
        expect(out.maxDiff).toBeLessThan(1e-5);
      }
    });
  }
});
