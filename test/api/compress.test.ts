// SPDX-License-Identifier: Apache-2.0
// Model compression from JS: pruning masks that survive optimizer steps, sparse / shared /
// quantized records and their expansion, the distillation loss against a float64 reference and
// finite differences, and the model file: round trip, atomic write, and rejection of truncated
// or corrupted files with clear errors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  decodeCompressedModel, decompress, distillationLoss, encodeCompressedModel, loadCompressedModel,
  magnitudePrune, quantizeWeights, saveCompressedModel, shareWeights, toDense, toSparse,
  type CompressedModel,
} from '../../lib/compress';
import { NodecclError, NodecclRangeError, NodecclTypeError } from '../../lib/errors';
import { Adam, SGD } from '../../lib/optim';

/** A small deterministic generator (mulberry32) of floats in [-1, 1). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

const randomArray = (n: number, seed: number, scale = 1) => {
  const r = random(seed);
  return Float32Array.from({ length: n }, () => r() * scale);
};

function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a throw');
}

const zeros = (a: Float32Array) => a.reduce((z, v) => z + (v === 0 ? 1 : 0), 0);

describe('magnitude pruning', () => {
  it('prunes exactly, globally or per tensor (worked by hand)', () => {
    // Global over 5 weights at 40%: the two smallest magnitudes, 0.5 and 1, one per tensor.
    const a = Float32Array.of(1, -3);
    const b = Float32Array.of(2, 0.5, -4);
    const mask = magnitudePrune([a, b], { sparsity: 0.4 });
    expect(Array.from(a)).toEqual([0, -3]);
    expect(Array.from(b)).toEqual([2, 0, -4]);
    expect(mask.sparsity()).toBeCloseTo(0.4, 12);

    // Per tensor at 50%: round(0.5 * 2) = 1 of a, round(0.5 * 3) = 2 of b.
    const c = Float32Array.of(1, -3);
    const d = Float32Array.of(2, 0.5, -4);
    magnitudePrune([c, d], { sparsity: 0.5, scope: 'tensor' });
    expect(Array.from(c)).toEqual([0, -3]);
    expect(Array.from(d)).toEqual([0, 0, -4]);
  });

  it('keeps pruned weights at zero through Adam and SGD steps', () => {
    for (const make of [(p: Float32Array[]) => new Adam(p, { lr: 0.1 }),
      (p: Float32Array[]) => new SGD(p, { lr: 0.1, momentum: 0.9 })]) {
      const params = [randomArray(1000, 1), randomArray(37, 2)];
      const opt = make(params);
      // Some momentum before pruning: a plain step would move the pruned weights again.
      opt.step([randomArray(1000, 3), randomArray(37, 4)]);
      const mask = magnitudePrune(params, { sparsity: 0.9 });
      const before = params.map((p) => zeros(p));
      for (let s = 0; s < 5; s++) {
        mask.maskedStep(opt, params, [randomArray(1000, 10 + s), randomArray(37, 20 + s)]);
      }
      params.forEach((p, i) => {
        expect(zeros(p)).toBe(before[i]);
        for (let j = 0; j < p.length; j++) if (mask.masks[i][j] === 0) expect(p[j]).toBe(0);
      });
      expect(before[0] + before[1]).toBe(Math.round(0.9 * 1037));
    }
  });

  it('rejects bad arguments with clear errors', () => {
    let e = thrown(() => magnitudePrune([new Float32Array(4)], { sparsity: 1.5 }));
    expect(e).toBeInstanceOf(NodecclRangeError);
    expect(e.message).toMatch(/sparsity must be in \[0, 1\], got 1.5/);
    e = thrown(() => magnitudePrune([Float32Array.of(1, NaN)], { sparsity: 0.5 }));
    expect(e.message).toMatch(/NaN at index 1/);
    e = thrown(() => magnitudePrune([new Float64Array(2) as never], { sparsity: 0.5 }));
    expect(e).toBeInstanceOf(NodecclTypeError);
    e = thrown(() => magnitudePrune([new Float32Array(2)], { sparsity: 0.5, scop: 'x' } as never));
    expect(e.message).toMatch(/did you mean 'scope'/);
    const mask = magnitudePrune([new Float32Array(2)], { sparsity: 0.5 });
    e = thrown(() => mask.apply([new Float32Array(3)]));
    expect(e.message).toMatch(/tensors\[0\] has 3 elements but its mask has 2/);
  });
});

describe('compressed records', () => {
  it('sparse records round-trip and store only nonzeros', () => {
    const x = Float32Array.of(0, 2, 0, 3, 0, 0, 0, 0, 5);
    const s = toSparse(x, [3, 3]);
    expect(Array.from(s.bitmap)).toEqual([0x0a, 0x01]);  // bits 1, 3 | bit 8
    expect(Array.from(s.values)).toEqual([2, 3, 5]);
    expect(Array.from(decompress(s))).toEqual(Array.from(x));
  });

  it('shares weights into 2^bits values, deterministically, sparse when pruned', () => {
    const w = randomArray(4000, 7, 0.1);
    magnitudePrune([w], { sparsity: 0.9 });
    for (const bits of [2, 4, 8]) {
      const a = shareWeights(w, { bits, seed: 3 });
      const b = shareWeights(w, { bits, seed: 3 });
      expect(a.tensor).toEqual(b.tensor);
      expect(a.tensor.bitmap).not.toBeNull();  // 90% zeros: only nonzeros are clustered
      expect(a.tensor.count).toBe(400);
      expect(a.tensor.indices.length).toBe(Math.ceil((400 * bits) / 8));
      const back = decompress(a.tensor);
      let sq = 0;
      for (let i = 0; i < w.length; i++) {
        if (w[i] === 0) expect(back[i]).toBe(0);
        else expect(Array.from(a.tensor.codebook)).toContain(back[i]);
        sq += (back[i] - w[i]) ** 2;
      }
      expect(sq).toBeCloseTo(a.inertia, 5);
    }
    // Four clear pairs, dense, 2 bits: each pair's mean is a shared value.
    const pairs = Float32Array.of(0, 0.1, 5, 5.2, 10, 10.2, 20, 20.4);
    const r = shareWeights(pairs, { bits: 2, sparse: false });
    const mean = (i: number) => Math.fround((pairs[i] + pairs[i + 1]) / 2);
    expect(Array.from(r.tensor.codebook)).toEqual([0, 2, 4, 6].map(mean));
    expect(Array.from(decompress(r.tensor))).toEqual([0, 0, 2, 2, 4, 4, 6, 6].map(mean));
    expect(thrown(() => shareWeights(w, { bits: 9 })).message).toMatch(/bits must be .* 2..8/);
  });

  it('quantizes to int8 / int4 within half a scale step', () => {
    const rows = 12;
    const cols = 30;
    const x = randomArray(rows * cols, 9);
    for (const bits of [8, 4] as const) {
      for (const opts of [{ axis: 0 as const }, { axis: 1 as const },
        { scheme: 'block' as const, blockSize: 64 }]) {
        const q = quantizeWeights(x, { bits, shape: [rows, cols], ...opts });
        const groups = 'blockSize' in opts ? Math.ceil(360 / 64) : opts.axis === 0 ? rows : cols;
        expect(q.scales.length).toBe(groups);
        expect(q.q.length).toBe(bits === 8 ? 360 : 180);
        const back = decompress(q);
        const maxScale = Math.max(...q.scales);
        for (let i = 0; i < x.length; i++) {
          expect(Math.abs(back[i] - x[i])).toBeLessThanOrEqual(maxScale / 2 + 1e-6);
        }
      }
    }
    // Worked by hand: one row, scale 7 / 7 = 1, codes {7, -3, 1, -7} -> bytes 0xd7, 0x91.
    const q4 = quantizeWeights(Float32Array.of(7, -3.4, 0.6, -7), { bits: 4 });
    expect(Array.from(q4.q)).toEqual([0xd7, 0x91]);
    expect(Array.from(decompress(q4))).toEqual([7, -3, 1, -7]);
    expect(thrown(() => quantizeWeights(x, { bits: 2 as never })).message).toMatch(/8 or 4/);
  });
});

describe('distillation loss', () => {
  // float64 reference, term by term: KL as sum p log(p / q), CE as -log softmax(s)[y].
  function reference(s: Float32Array, t: Float32Array, y: number[], C: number, T: number,
                     alpha: number): { loss: number; grad: number[] } {
    const softmax = (v: ArrayLike<number>, from: number, scale: number) => {
      const row = Array.from({ length: C }, (_, j) => v[from + j] * scale);
      const m = Math.max(...row);
      const e = row.map((r) => Math.exp(r - m));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((x) => x / z);
    };
    const N = y.length;
    let loss = 0;
    const grad: number[] = [];
    for (let r = 0; r < N; r++) {
      const p = softmax(t, r * C, 1 / T);
      const q = softmax(s, r * C, 1 / T);
      const h = softmax(s, r * C, 1);
      let kl = 0;
      for (let j = 0; j < C; j++) kl += p[j] * Math.log(p[j] / q[j]);
      loss += (alpha * T * T * kl - (1 - alpha) * Math.log(h[y[r]])) / N;
      for (let j = 0; j < C; j++) {
        grad.push((alpha * T * (q[j] - p[j]) + (1 - alpha) * (h[j] - (j === y[r] ? 1 : 0))) / N);
      }
    }
    return { loss, grad };
  }

  it('matches a float64 reference and finite differences', () => {
    const N = 6;
    const C = 10;
    const s = randomArray(N * C, 31, 4);
    const t = randomArray(N * C, 32, 6);
    const y = [3, 0, 9, 9, 1, 5];
    for (const T of [1, 3, 8]) {
      for (const alpha of [0, 0.5, 0.9, 1]) {
        const r = distillationLoss(s, t, Int32Array.from(y), { classes: C, temperature: T, alpha });
        const ref = reference(s, t, y, C, T, alpha);
        expect(Math.abs(r.loss - ref.loss)).toBeLessThan(1e-12 * (1 + Math.abs(ref.loss)));
        r.grad!.forEach((g, i) => expect(Math.abs(g - ref.grad[i])).toBeLessThan(1e-7));
        for (let i = 0; i < N * C; i += 11) {
          const sp = s.slice();
          const sm = s.slice();
          sp[i] += 1e-2;
          sm[i] -= 1e-2;
          const opts = { classes: C, temperature: T, alpha, grad: false };
          const lp = distillationLoss(sp, t, y, opts).loss;
          const lm = distillationLoss(sm, t, y, opts).loss;
          expect(Math.abs((lp - lm) / (sp[i] - sm[i]) - r.grad![i])).toBeLessThan(2e-5);
        }
      }
    }
  });

  it('rejects bad labels, temperatures and shapes', () => {
    const s = new Float32Array(4);
    let e = thrown(() => distillationLoss(s, s, [0, 2], { classes: 2 }));
    expect(e).toBeInstanceOf(NodecclRangeError);
    expect(e.message).toMatch(/label 2 of row 1 is outside \[0, 2\)/);
    e = thrown(() => distillationLoss(s, s, [0, 1], { classes: 2, temperature: 0 }));
    expect(e.message).toMatch(/temperature must be a finite number > 0/);
    e = thrown(() => distillationLoss(s, s, [0], { classes: 2 }));
    expect(e.message).toMatch(/1 labels x 2 classes needs 2 student logits, got 4/);
  });
});

describe('compressed model file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-compress-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function sampleModel(): CompressedModel {
    const w = randomArray(300, 41, 0.2);
    magnitudePrune([w], { sparsity: 0.8 });
    return {
      tensors: {
        dense: toDense(Float32Array.of(1, 2, 3), [3]),
        sparse: toSparse(w, [20, 15]),
        shared: shareWeights(w, { bits: 4, shape: [20, 15] }).tensor,
        int8: quantizeWeights(randomArray(300, 42), { shape: [20, 15], axis: 1 }),
        int4: quantizeWeights(randomArray(301, 43), { bits: 4, scheme: 'block', blockSize: 32 }),
      },
      metadata: { note: 'test', accuracy: 0.5 },
    };
  }

  it('round-trips every record kind through an atomic save', () => {
    const model = sampleModel();
    const file = path.join(dir, 'm.nccz');
    const n = saveCompressedModel(file, model);
    expect(fs.statSync(file).size).toBe(n);
    expect(fs.readdirSync(dir)).toEqual(['m.nccz']);  // no temporary file left behind
    const back = loadCompressedModel(file);
    expect(back.metadata).toEqual(model.metadata);
    expect(Object.keys(back.tensors)).toEqual(Object.keys(model.tensors));
    for (const name of Object.keys(model.tensors)) {
      expect(back.tensors[name]).toEqual(model.tensors[name]);
      expect(decompress(back.tensors[name])).toEqual(decompress(model.tensors[name]));
    }
    // Saving again replaces the file whole.
    saveCompressedModel(file, { tensors: { only: toDense(Float32Array.of(5)) } });
    expect(Object.keys(loadCompressedModel(file).tensors)).toEqual(['only']);
  });

  it('rejects truncated, extended and corrupted files with clear errors', () => {
    const bytes = encodeCompressedModel(sampleModel());
    const fails = (b: Uint8Array, pattern: RegExp) => {
      const e = thrown(() => decodeCompressedModel(b, 'x.nccz'));
      expect(e).toBeInstanceOf(NodecclError);
      expect(e.code).toBe('ERR_NODECCL_IO');
      expect(e.message).toMatch(pattern);
    };
    fails(bytes.slice(0, 10), /x.nccz: truncated: 10 bytes, shorter than the smallest/);
    fails(bytes.slice(0, bytes.length - 1), /truncated: \d+ bytes but the header declares/);
    fails(Uint8Array.from([...bytes, 0]), /1 unexpected bytes after the declared end/);
    const magic = bytes.slice();
    magic[0] ^= 1;
    fails(magic, /not a nodeccl compressed model/);
    // Any flipped bit of the header or payload fails the checksum.
    for (const at of [30, Math.floor(bytes.length / 2), bytes.length - 40, bytes.length - 1]) {
      const bad = bytes.slice();
      bad[at] ^= 0x10;
      fails(bad, /checksum mismatch .*corrupted/);
    }
    const file = path.join(dir, 'cut.nccz');
    fs.writeFileSync(file, bytes.slice(0, 100));
    const e = thrown(() => loadCompressedModel(file));
    expect(e.message).toContain(file);
    expect(thrown(() => loadCompressedModel(path.join(dir, 'missing.nccz'))).message)
      .toMatch(/could not read .*missing.nccz/);
  });

  it('refuses to write a record whose parts disagree', () => {
    const s = toSparse(Float32Array.of(0, 1, 2, 0));
    s.values = Float32Array.of(1);
    const e = thrown(() => encodeCompressedModel({ tensors: { s } }));
    expect(e).toBeInstanceOf(NodecclRangeError);
    expect(e.message).toMatch(/marks 2 nonzeros but 1 values/);
    const shared = shareWeights(Float32Array.of(1, 2, 3, 4), { bits: 2 }).tensor;
    shared.codebook = new Float32Array(3);
    expect(thrown(() => encodeCompressedModel({ tensors: { shared } })).message)
      .toMatch(/2 bits needs 2\^bits codebook values, got 3/);
  });
});
