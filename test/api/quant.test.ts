// SPDX-License-Identifier: Apache-2.0
// The codecs from JS: round-trip error bounds, sizes, accumulate, error feedback's invariant
// over several steps, and argument errors. (The C++ suite covers edge values and ISA levels.)
import { describe, expect, it } from 'vitest';
import { NodecclRangeError, NodecclTypeError } from '../../lib/errors';
import { Codec, ErrorFeedback, type CodecKind } from '../../lib/quant';

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (s * 1664525 + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return Float32Array.from({ length: n }, () =>
    Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

function absmax(x: Float32Array, b: number, e: number): number {
  let m = 0;
  for (let i = b; i < e; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

describe('codecs', () => {
  for (const n of [0, 1, 17, 1000, 4099]) {
    it(`meet their error bounds, n = ${n}`, () => {
      const x = randn(n, n + 1);
      const f16 = new Codec('float16');
      const y16 = f16.decode(f16.encode(x), n);
      for (let i = 0; i < n; i++) {
        expect(Math.abs(y16[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -11 + 2 ** -25);
      }
      const bf = new Codec('bfloat16');
      const ybf = bf.decode(bf.encode(x), n);
      for (let i = 0; i < n; i++) {
        expect(Math.abs(ybf[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -8);
      }
      for (const [kind, block, q] of [['int8', 256, 254], ['int8', 0, 254], ['int4', 64, 14]] as
        Array<[CodecKind, number, number]>) {
        const c = new Codec({ kind, blockSize: block });
        const y = c.decode(c.encode(x), n);
        const bl = block || n;
        for (let b = 0; b < n; b += bl) {
          const m = absmax(x, b, Math.min(n, b + bl));
          for (let i = b; i < Math.min(n, b + bl); i++) {
            expect(Math.abs(y[i] - x[i])).toBeLessThanOrEqual(m / q * (1 + 1e-6));
          }
        }
      }
    });
  }

  it('sizes: int8 per block is 1 byte per element plus 4 per block', () => {
    expect(new Codec({ kind: 'int8', blockSize: 256 }).encodedBytes(1000)).toBe(4 * 4 + 1000);
    expect(new Codec('int4').encodedBytes(1001)).toBe(4 * 16 + 501);
    expect(new Codec('sign1').encodedBytes(1000)).toBe(4 + 125);
    expect(new Codec({ kind: 'topk', ratio: 0.01 }).encodedBytes(1000)).toBe(80);
    expect(new Codec({ kind: 'randomk', ratio: 0.01 }).encodedBytes(1000)).toBe(8 + 40);
    expect(new Codec('float16').encodedBytes(3)).toBe(6);
  });

  it('sign1 keeps signs and the L1 norm; topk keeps the largest', () => {
    const x = Float32Array.from([3, -1, 0.5, -0.25, 2, 0, -4, 1]);
    const s = new Codec('sign1');
    // mean |x| = 11.75 / 8 = 1.46875; signs + - + - + + - + (0 counts as +)
    expect([...s.decode(s.encode(x), 8)]).toEqual(
      [1, -1, 1, -1, 1, 1, -1, 1].map((v) => v * 1.46875));
    const t = new Codec({ kind: 'topk', ratio: 0.25 });
    expect([...t.decode(t.encode(x), 8)]).toEqual([3, 0, 0, 0, 0, 0, -4, 0]);
  });

  it('decode can accumulate', () => {
    const c = new Codec('int8');
    const x = randn(100, 3);
    const once = c.decode(c.encode(x), 100);
    const acc = c.decode(c.encode(x), new Float32Array(100).fill(1), { accumulate: true });
    for (let i = 0; i < 100; i++) expect(acc[i]).toBe(Math.fround(1 + once[i]));
  });

  it('rejects unknown codecs and bad sizes', () => {
    expect(() => new Codec('int9' as CodecKind))
      .toThrow(/unknown codec 'int9'; did you mean 'int8'\?/);
    expect(() => new Codec({ kind: 'int4', blockSize: 3 })).toThrow(NodecclRangeError);
    expect(() => new Codec('int8').encode(new Float32Array(10), new Uint8Array(3)))
      .toThrow(/encode to 14/);
    expect(() => new Codec('int8').encode(new Float64Array(3) as unknown as Float32Array))
      .toThrow(NodecclTypeError);
  });
});

describe('ErrorFeedback', () => {
  for (const kind of ['int8', 'int4', 'sign1', 'topk', 'randomk'] as CodecKind[]) {
    it(`${kind}: sent + residual == sum of gradients, exactly, over 6 steps`, () => {
      const n = 1001;
      const ef = new ErrorFeedback({ kind, ratio: 0.05 });
      const sent = new Float64Array(n);
      const grads = new Float64Array(n);
      for (let step = 0; step < 6; step++) {
        const g = randn(n, 50 + step);
        const { bytes, codec } = ef.encode('w', g);
        const d = codec.decode(bytes, n);
        for (let i = 0; i < n; i++) {
          sent[i] += d[i];
          grads[i] += g[i];
        }
      }
      const r = ef.residual('w')!;
      let mismatches = 0;
      for (let i = 0; i < n; i++) if (sent[i] + r[i] !== grads[i]) mismatches++;
      expect(mismatches).toBe(0);
    });
  }
});
