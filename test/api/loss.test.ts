// SPDX-License-Identifier: Apache-2.0
// The loss kernels from JS: values worked by hand, a float64 reference, and argument errors.
import { describe, expect, it } from 'vitest';
import { NodecclRangeError, NodecclTypeError } from '../../lib/errors';
import { mseLoss, softmaxCrossEntropy } from '../../lib/loss';

describe('losses', () => {
  it('mseLoss by hand', () => {
    // (1 - 0)^2 + (2 - 4)^2 = 5, mean 2.5; gradient 2 (p - t) / 2 = (1, -2).
    const { loss, grad } = mseLoss(Float32Array.from([1, 2]), Float32Array.from([0, 4]));
    expect(loss).toBe(2.5);
    expect([...grad!]).toEqual([1, -2]);
    expect(mseLoss(Float32Array.from([1, 2]), Float32Array.from([0, 4]),
      { reduction: 'sum', grad: false })).toEqual({ loss: 5, grad: null });
  });

  it('softmaxCrossEntropy by hand, stable for huge logits', () => {
    // Row 0: logits (0, ln 3), label 1: softmax (1/4, 3/4), loss -ln(3/4).
    // Row 1: logits (1000, 0), label 1: loss 1000 (no overflow); ignored row 2.
    const x = Float32Array.from([0, Math.log(3), 1000, 0, 5, 5]);
    const { loss, grad } = softmaxCrossEntropy(x, [1, 1, -100], 2, { reduction: 'sum' });
    expect(loss).toBeCloseTo(-Math.log(0.75) + 1000, 5);
    expect(grad![0]).toBeCloseTo(0.25, 7);
    expect(grad![1]).toBeCloseTo(-0.25, 7);
    expect(grad![2]).toBeCloseTo(1, 7);
    expect(grad![3]).toBeCloseTo(-1, 7);
    expect([grad![4], grad![5]]).toEqual([0, 0]);
  });

  it('softmaxCrossEntropy against a float64 reference', () => {
    const rows = 9;
    const classes = 5;
    const x = Float32Array.from({ length: rows * classes }, (_, i) => Math.sin(i * 1.7) * 4);
    const labels = Int32Array.from({ length: rows }, (_, i) => (i * 3) % classes);
    const { loss, grad } = softmaxCrossEntropy(x, labels, classes);
    let ref = 0;
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < classes; j++) s += Math.exp(x[r * classes + j]);
      ref += Math.log(s) - x[r * classes + labels[r]];
      for (let j = 0; j < classes; j++) {
        const want = (Math.exp(x[r * classes + j]) / s - (j === labels[r] ? 1 : 0)) / rows;
        expect(Math.abs(grad![r * classes + j] - want)).toBeLessThan(1e-7);
      }
    }
    expect(loss).toBeCloseTo(ref / rows, 6);
  });

  it('rejects bad labels and shapes', () => {
    expect(() => softmaxCrossEntropy(new Float32Array(4), [0, 2], 2)).toThrow(NodecclRangeError);
    expect(() => softmaxCrossEntropy(new Float32Array(4), [0, 2], 2)).toThrow(/labels\[1\] is 2/);
    expect(() => softmaxCrossEntropy(new Float32Array(5), [0, 1], 2)).toThrow(/needs/);
    expect(() => mseLoss(new Float64Array(2) as unknown as Float32Array, new Float32Array(2)))
      .toThrow(NodecclTypeError);
    expect(() => mseLoss(new Float32Array(2), new Float32Array(3))).toThrow(/target 3/);
  });
});
