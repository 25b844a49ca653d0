// SPDX-License-Identifier: Apache-2.0
// The fused optimizers from JS: each against a float64 reference written here, values worked
// by hand, argument errors (class, code, wording), and bit-identical checkpoint continuation.
import { describe, expect, it } from 'vitest';
import { NodecclRangeError, NodecclTypeError } from '../../lib/errors';
import { native } from '../../lib/native';
import {
  Adam, AdamW, RMSprop, SGD, STATE_FORMAT, type Optimizer, type OptimizerStateDict,
} from '../../lib/optim';
import { Tensor } from '../../lib/tensor';

/** Runs `fn` and returns what it threw (failing the test when it throws nothing). */
function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a throw');
}

/** Expects `fn` to throw `cls` with the invalid-argument code and `pattern` in its message. */
function expectArgError(fn: () => unknown, cls: typeof NodecclTypeError | typeof NodecclRangeError,
                        pattern: RegExp | string): void {
  const e = thrown(fn);
  expect(e).toBeInstanceOf(cls);
  expect(e.code).toBe('ERR_NODECCL_INVALID_ARGUMENT');
  expect(e.message).toMatch(pattern);
}

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

const SIZES = [1, 7, 100];

function randomArrays(rand: () => number, scale = 1): Float32Array[] {
  return SIZES.map((n) => Float32Array.from({ length: n }, () => rand() * scale));
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

// ---- float64 references: torch.optim's documented algorithms, one element at a time ----------

type Ref = (p: number[], g: readonly number[], s: Record<string, number[] | number>) => void;
const zerosLike = (p: number[]) => p.map(() => 0);

function sgdRef(o: { lr: number; momentum: number; dampening: number; weightDecay: number;
                     nesterov: boolean }): Ref {
  return (p, grad, s) => {
    const first = s.step === undefined;
    s.step = ((s.step as number) ?? 0) + 1;
    const b = (s.b ??= zerosLike(p)) as number[];
    for (let i = 0; i < p.length; i++) {
      let g = grad[i] + o.weightDecay * p[i];
      if (o.momentum !== 0) {
        b[i] = first ? g : o.momentum * b[i] + (1 - o.dampening) * g;
        g = o.nesterov ? g + o.momentum * b[i] : b[i];
      }
      p[i] -= o.lr * g;
    }
  };
}

function rmspropRef(o: { lr: number; alpha: number; eps: number; weightDecay: number;
                         momentum: number; centered: boolean }): Ref {
  return (p, grad, s) => {
    const sq = (s.sq ??= zerosLike(p)) as number[];
    const ga = (s.ga ??= zerosLike(p)) as number[];
    const b = (s.b ??= zerosLike(p)) as number[];
    for (let i = 0; i < p.length; i++) {
      const g = grad[i] + o.weightDecay * p[i];
      sq[i] = o.alpha * sq[i] + (1 - o.alpha) * g * g;
      ga[i] = o.alpha * ga[i] + (1 - o.alpha) * g;
      const avg = Math.sqrt(o.centered ? sq[i] - ga[i] * ga[i] : sq[i]) + o.eps;
      if (o.momentum !== 0) {
        b[i] = o.momentum * b[i] + g / avg;
        p[i] -= o.lr * b[i];
      } else {
        p[i] -= (o.lr * g) / avg;
      }
    }
  };
}

function adamRef(o: { lr: number; betas: [number, number]; eps: number; weightDecay: number;
                      amsgrad: boolean; biasCorrection: boolean }, decoupled: boolean): Ref {
  const [b1, b2] = o.betas;
  return (p, grad, s) => {
    const t = (s.step = ((s.step as number) ?? 0) + 1);
    const m = (s.m ??= zerosLike(p)) as number[];
    const v = (s.v ??= zerosLike(p)) as number[];
    const vMax = (s.vMax ??= zerosLike(p)) as number[];
    const bc1 = o.biasCorrection ? 1 - b1 ** t : 1;
    const bc2 = o.biasCorrection ? 1 - b2 ** t : 1;
    for (let i = 0; i < p.length; i++) {
      let g = grad[i];
      if (decoupled) p[i] *= 1 - o.lr * o.weightDecay;
      else g += o.weightDecay * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      vMax[i] = Math.max(vMax[i], v[i]);
      const vHat = (o.amsgrad ? vMax[i] : v[i]) / bc2;
      p[i] -= (o.lr * (m[i] / bc1)) / (Math.sqrt(vHat) + o.eps);
    }
  };
}

// ---- against the references --------------------------------------------------------------------

interface Case {
  title: string;
  make: (params: Float32Array[]) => Optimizer;
  ref: Ref;
  gradScale: number;
}

const sgdDefaults = { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false };
const rmsDefaults = { lr: 1e-2, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0,
                      centered: false };
const adamDefaults = { lr: 1e-3, betas: [0.9, 0.999] as [number, number], eps: 1e-8,
                       weightDecay: 0, amsgrad: false, biasCorrection: true };

const CASES: Case[] = [
  { title: 'SGD defaults', make: (p) => new SGD(p), ref: sgdRef(sgdDefaults), gradScale: 1 },
  { title: 'SGD nesterov', make: (p) => new SGD(p, { lr: 0.1, momentum: 0.9, nesterov: true }),
    ref: sgdRef({ ...sgdDefaults, lr: 0.1, momentum: 0.9, nesterov: true }), gradScale: 1 },
  { title: 'SGD dampening + decay',
    make: (p) => new SGD(p, { lr: 0.05, momentum: 0.8, dampening: 0.3, weightDecay: 0.01 }),
    ref: sgdRef({ ...sgdDefaults, lr: 0.05, momentum: 0.8, dampening: 0.3, weightDecay: 0.01 }),
    gradScale: 1 },
  { title: 'RMSprop defaults', make: (p) => new RMSprop(p), ref: rmspropRef(rmsDefaults),
    gradScale: 1 },
  { title: 'RMSprop centered + momentum + decay',
    make: (p) => new RMSprop(p, { centered: true, momentum: 0.5, weightDecay: 0.01, alpha: 0.9 }),
    ref: rmspropRef({ ...rmsDefaults, centered: true, momentum: 0.5, weightDecay: 0.01,
                      alpha: 0.9 }),
    gradScale: 1 },
  { title: 'Adam defaults', make: (p) => new Adam(p), ref: adamRef(adamDefaults, false),
    gradScale: 0.01 },
  { title: 'Adam amsgrad + L2',
    make: (p) => new Adam(p, { amsgrad: true, weightDecay: 0.1, eps: 1e-3 }),
    ref: adamRef({ ...adamDefaults, amsgrad: true, weightDecay: 0.1, eps: 1e-3 }, false),
    gradScale: 0.01 },
  { title: 'Adam without bias correction', make: (p) => new Adam(p, { biasCorrection: false }),
    ref: adamRef({ ...adamDefaults, biasCorrection: false }, false), gradScale: 0.01 },
  { title: 'AdamW defaults', make: (p) => new AdamW(p),
    ref: adamRef({ ...adamDefaults, weightDecay: 1e-2 }, true), gradScale: 0.01 },
  { title: 'AdamW amsgrad, betas',
    make: (p) => new AdamW(p, { amsgrad: true, betas: [0.5, 0.9], weightDecay: 0.3, lr: 0.01 }),
    ref: adamRef({ ...adamDefaults, amsgrad: true, betas: [0.5, 0.9], weightDecay: 0.3,
                   lr: 0.01 }, true),
    gradScale: 0.01 },
];

describe('fused optimizers against a float64 reference', () => {
  for (const c of CASES) {
    it(c.title, () => {
      const rand = random(42);
      const params = randomArrays(rand);
      const ref = params.map((p) => Array.from(p));
      const refState = params.map(() => ({} as Record<string, number[] | number>));
      const opt = c.make(params);
      for (let step = 0; step < 12; step++) {
        const grads = randomArrays(rand, c.gradScale);
        opt.step(grads);
        grads.forEach((g, i) => c.ref(ref[i], Array.from(g), refState[i]));
      }
      // float32 rounding of 12 updates stays near 1e-7 relative; a formula slip is far larger.
      let worst = 0;
      params.forEach((p, i) => p.forEach((x, j) => {
        worst = Math.max(worst, Math.abs(x - ref[i][j]) / (1 + Math.abs(ref[i][j])));
      }));
      expect(worst).toBeLessThan(5e-6);
      expect(opt.stateDict().state.map((s) => s.step)).toEqual([12, 12, 12]);
    });
  }

  it('records torch defaults in the state dict', () => {
    const p = [new Float32Array(2)];
    expect(new SGD(p).stateDict().options).toEqual(sgdDefaults);
    expect(new RMSprop(p).stateDict().options).toEqual(rmsDefaults);
    expect(new Adam(p).stateDict().options).toEqual(adamDefaults);
    expect(new AdamW(p).stateDict().options).toEqual({ ...adamDefaults, weightDecay: 1e-2 });
  });
});

// ---- values worked by hand ----------------------------------------------------------------------

describe('hand-worked steps', () => {
  // First Adam step: m = (1-b1) g, v = (1-b2) g^2, so m^ = g, v^ = g^2 and the update is
  // lr * g / (|g| + eps): with lr 0.1, eps 1, g 3: 1 - 0.3 / 4 = 0.925; g -0.5: 1 + 0.05/1.5.
  it('Adam, first step with a large eps', () => {
    const p = new Float32Array([1, 1]);
    new Adam([p], { lr: 0.1, eps: 1 }).step([new Float32Array([3, -0.5])]);
    expect(p[0]).toBeCloseTo(0.925, 6);
    expect(p[1]).toBeCloseTo(1 + 0.05 / 1.5, 6);
  });

  // lr 0.1, wd 0.5, eps 1, p 2, g 0.5, first step:
  //   Adam:  g' = 0.5 + 0.5 * 2 = 1.5;   p = 2 - 0.1 * 1.5 / (1.5 + 1)        = 1.94
  //   AdamW: p = 2 * (1 - 0.05) = 1.9;   p = 1.9 - 0.1 * 0.5 / (0.5 + 1)     = 1.866667
  // They differ by 0.04 + 0.1/3 = 0.073333.
  it('AdamW decoupled decay differs from Adam L2 decay by the hand-computed amount', () => {
    const a = new Float32Array([2]);
    const w = new Float32Array([2]);
    const options = { lr: 0.1, eps: 1, weightDecay: 0.5 };
    new Adam([a], options).step([new Float32Array([0.5])]);
    new AdamW([w], options).step([new Float32Array([0.5])]);
    expect(a[0]).toBeCloseTo(1.94, 6);
    expect(w[0]).toBeCloseTo(1.9 - 0.1 / 3, 6);
    expect(a[0] - w[0]).toBeCloseTo(0.04 + 0.1 / 3, 6);
  });

  // lr 0.1, momentum 0.9, nesterov, p 1, g 1 then 0.5:
  //   b = 1, d = 1 + 0.9 = 1.9, p = 0.81;  b = 0.9 + 0.5 = 1.4, d = 0.5 + 1.26 = 1.76, p = 0.634
  it('SGD with Nesterov momentum, two steps', () => {
    const p = new Float32Array([1]);
    const opt = new SGD([p], { lr: 0.1, momentum: 0.9, nesterov: true });
    opt.step([new Float32Array([1])]);
    expect(p[0]).toBeCloseTo(0.81, 6);
    opt.step([new Float32Array([0.5])]);
    expect(p[0]).toBeCloseTo(0.634, 6);
    expect(opt.stateDict().state[0].momentumBuffer![0]).toBeCloseTo(1.4, 6);
  });

  // lr 0.01, alpha 0.99, p 1, g 2: sq = 0.04, p = 1 - 0.02 / 0.2 = 0.9.
  it('RMSprop, first step', () => {
    const p = new Float32Array([1]);
    new RMSprop([p]).step([new Float32Array([2])]);
    expect(p[0]).toBeCloseTo(0.9, 6);
  });
});

// ---- per-parameter steps, tensors, lr -----------------------------------------------------------

describe('optimizer behaviour', () => {
  it('keeps a step count per parameter; a null gradient skips its parameter', () => {
    const a = new Float32Array([1, 2]);
    const b = new Float32Array([3]);
    const opt = new Adam([a, b], { lr: 0.1 });
    opt.step([new Float32Array([1, 1]), new Float32Array([1])]);
    opt.step([new Float32Array([1, 1]), null]);
    opt.step([undefined, new Float32Array([1])]);
    opt.step([null, null]);
    expect(opt.stateDict().state.map((s) => s.step)).toEqual([2, 2]);

    // Both parameters saw the same gradient twice: the same bias corrections, the same result.
    const c = new Float32Array([1, 2]);
    const o2 = new Adam([c], { lr: 0.1 });
    o2.step([new Float32Array([1, 1])]);
    o2.step([new Float32Array([1, 1])]);
    expect(Array.from(bits(a))).toEqual(Array.from(bits(c)));
    expect(b[0]).toBeCloseTo(3 - 0.2, 5);
  });

  it('accepts float32 tensors and tensor-like objects, updating their data', () => {
    const t = new Tensor(new Float32Array([1, 1]), 'float32', [2]);
    const like = { data: new Float32Array([1]), dtype: 'float32' as const, shape: [1] };
    const opt = new SGD([t, like], { lr: 0.5 });
    opt.step([new Tensor(new Float32Array([1, 2]), 'float32'), new Float32Array([4])]);
    expect(Array.from(t.data)).toEqual([0.5, 0]);
    expect(like.data[0]).toBe(-1);
  });

  it('changes the learning rate between steps', () => {
    const p = new Float32Array([1]);
    const opt = new SGD([p], { lr: 0.1 });
    expect(opt.lr).toBe(0.1);
    opt.step([new Float32Array([1])]);
    opt.lr = 0.01;
    expect(opt.lr).toBe(0.01);
    opt.step([new Float32Array([1])]);
    expect(p[0]).toBeCloseTo(1 - 0.1 - 0.01, 6);
    expect(opt.stateDict().options.lr).toBe(0.01);
    expectArgError(() => { opt.lr = -1; }, NodecclRangeError, 'lr must be a finite number >= 0');
    expectArgError(() => { opt.lr = '0.1' as unknown as number; }, NodecclTypeError,
      'SGD.lr: value must be a number');
    expect(opt.lr).toBe(0.01);
  });
});

// ---- argument errors ----------------------------------------------------------------------------

describe('argument errors', () => {
  const p = () => [new Float32Array(3), new Float32Array(2)];

  it('rejects unknown options with a suggestion', () => {
    expectArgError(() => new AdamW(p(), { weight_decay: 0.1 } as never), NodecclTypeError,
      "new AdamW(): unknown option 'weight_decay'; did you mean 'weightDecay'?");
    expectArgError(() => new Adam(p(), { beta1: 0.8 } as never), NodecclTypeError,
      "did you mean 'betas'?");
    expectArgError(() => new SGD(p(), { momentom: 0.9 } as never), NodecclTypeError,
      "did you mean 'momentum'?");
    expectArgError(() => new RMSprop(p(), { betas: [0.9, 0.9] } as never), NodecclTypeError,
      /Allowed options: lr, alpha, eps, weightDecay, momentum, centered/);
    expectArgError(() => new Adam(p(), 0.1 as never), NodecclTypeError,
      'options must be an object');
  });

  it('rejects option values of the wrong type or out of range, naming them', () => {
    expectArgError(() => new Adam(p(), { lr: '0.1' as never }), NodecclTypeError,
      'options.lr must be a number, got "0.1"');
    expectArgError(() => new Adam(p(), { betas: [0.9] as never }), NodecclTypeError,
      'options.betas must be two numbers');
    expectArgError(() => new SGD(p(), { nesterov: 1 as never }), NodecclTypeError,
      'options.nesterov must be a boolean');
    expectArgError(() => new Adam(p(), { lr: -1 }), NodecclRangeError,
      'Adam: lr must be a finite number >= 0, got -1');
    expectArgError(() => new AdamW(p(), { betas: [0.9, 1] }), NodecclRangeError,
      'AdamW: betas[1] must be in [0, 1), got 1');
    expectArgError(() => new RMSprop(p(), { eps: Number.NaN }), NodecclRangeError,
      'eps must be a finite number >= 0, got nan');
    expectArgError(() => new SGD(p(), { nesterov: true }), NodecclRangeError,
      'nesterov needs momentum > 0 and dampening 0');
  });

  it('rejects bad parameter lists', () => {
    expectArgError(() => new SGD(new Float32Array(3) as never), NodecclTypeError,
      'params must be an array');
    expectArgError(() => new SGD([]), NodecclRangeError, 'params is empty');
    expectArgError(() => new Adam([new Float32Array(2), new Float64Array(2) as never]),
      NodecclTypeError, 'params[1] is a Float64Array; only float32 is supported');
    const half = new Tensor(new Uint16Array(2), 'float16');
    expectArgError(() => new Adam([half as never]), NodecclTypeError,
      'params[0] is a tensor of dtype "float16"; only float32 is supported');
    expectArgError(() => new Adam([[1, 2] as never]), NodecclTypeError,
      'params[0] must be a Float32Array or a float32 Tensor');
    const x = new Float32Array(2);
    expectArgError(() => new Adam([x, new Float32Array(1), x]), NodecclRangeError,
      'params[2] is the same parameter as params[0]');
  });

  it('rejects bad gradients, naming the entry, and writes nothing', () => {
    const params = p();
    const opt = new Adam(params, { lr: 0.1 });
    const g = () => [new Float32Array(3).fill(1), new Float32Array(2).fill(1)];
    expectArgError(() => opt.step(g().slice(0, 1)), NodecclRangeError,
      'Adam.step(): grads has 1 entries but the optimizer has 2 parameters');
    expectArgError(() => opt.step([g()[0], new Float32Array(3)]), NodecclRangeError,
      'grads[1] has 3 elements but params[1] has 2');
    expectArgError(() => opt.step([g()[0], new Float64Array(2) as never]), NodecclTypeError,
      'grads[1] is a Float64Array; only float32 is supported');
    expectArgError(() => opt.step('x' as never), NodecclTypeError, 'grads must be an array');
    expectArgError(() => opt.step([params[0], g()[1]]), NodecclRangeError,
      'params[0] and grads[0] share memory');
    expect(params.every((a) => a.every((v) => v === 0))).toBe(true);
    expect(opt.stateDict().state.map((s) => s.step)).toEqual([0, 0]);
  });

  it('native calls never crash on bad input', () => {
    const n = native();
    const o = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, amsgrad: false,
                decoupled: false, biasCorrection: true };
    const f = (k: number) => Array.from({ length: k }, () => new Float32Array(4));
    const steps = new Float64Array(2);
    const calls: Array<[() => unknown, RegExp]> = [
      [() => (n.adamStep as (...a: unknown[]) => void)(), /options must be an object/],
      [() => n.adamStep({ ...o, lr: 'x' } as never, f(2), f(2), f(2), f(2), null, steps),
        /options.lr must be a number/],
      [() => n.adamStep(o, f(2), f(1), f(2), f(2), null, steps), /grads has 1 entries/],
      [() => n.adamStep(o, f(2), f(2), [new Float32Array(4), new Float32Array(3)], f(2), null,
        steps), /expAvgs\[1\] has 3 elements/],
      [() => n.adamStep(o, f(2), f(2), f(2), f(2), null, new Float32Array(2) as never),
        /steps must be a Float64Array/],
      [() => n.adamStep(o, f(2), f(2), f(2), f(2), null, new Float64Array([0.5, 0])),
        /steps\[0\] is 0.5/],
      [() => n.adamStep({ ...o, amsgrad: true }, f(2), f(2), f(2), f(2), null, steps),
        /maxExpAvgSqs must be an array/],
      [() => n.sgdStep({ lr: 1, momentum: 0.5, dampening: 0, weightDecay: 0, nesterov: false },
        f(1), f(1), [{}] as never, new Float64Array(1)), /momentumBuffers\[0\] must be a Float32/],
      [() => n.rmspropStep({ lr: 1, alpha: 0.9, eps: 0, weightDecay: 0, momentum: 0,
        centered: true }, f(1), f(1), f(1), null, null, new Float64Array(1)), /gradAvgs/],
    ];
    for (const [call, pattern] of calls) {
      const e = thrown(call);
      expect(e.code).toBe('ERR_NODECCL_INVALID_ARGUMENT');
      expect(e.message).toMatch(pattern);
    }
    expect(Array.from(steps)).toEqual([0, 0]);
  });
});

// ---- checkpoints --------------------------------------------------------------------------------

describe('stateDict / loadStateDict', () => {
  type Make = (p: Float32Array[]) => Optimizer;
  const KINDS: Array<[string, Make, Make]> = [
    ['SGD', (p) => new SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 }),
     (p) => new SGD(p)],
    ['RMSprop', (p) => new RMSprop(p, { centered: true, momentum: 0.5, weightDecay: 1e-3 }),
     (p) => new RMSprop(p)],
    ['Adam', (p) => new Adam(p, { amsgrad: true, weightDecay: 0.01 }), (p) => new Adam(p)],
    ['AdamW', (p) => new AdamW(p, { amsgrad: true, lr: 0.01 }), (p) => new AdamW(p)],
  ];

  // Copies of `params` placed one float past the start of a larger buffer, so the fresh run
  // sees different alignment than the original.
  const shifted = (params: Float32Array[]) => params.map((a) => {
    const copy = new Float32Array(a.length + 1).subarray(1);
    copy.set(a);
    return copy;
  });

  const toJson = (d: OptimizerStateDict) => JSON.parse(JSON.stringify(d, (_k, v: unknown) =>
    (v instanceof Float32Array ? Array.from(v) : v))) as OptimizerStateDict;

  for (const [name, make, fresh] of KINDS) {
    for (const via of ['structuredClone', 'JSON'] as const) {
      it(`${name}: continues bit for bit after a round trip through ${via}`, () => {
        const rand = random(7);
        const params = randomArrays(rand);
        const opt = make(params);
        for (let s = 0; s < 5; s++) {
          const g: (Float32Array | null)[] = randomArrays(rand);
          if (s === 2) g[1] = null;  // uneven step counts
          opt.step(g);
        }

        // Save, clone, and restore into a fresh optimizer built with other options.
        const saved = opt.stateDict();
        const dict = via === 'JSON' ? toJson(saved) : structuredClone(saved);
        const restoredParams = shifted(params);
        const restored = fresh(restoredParams);
        restored.loadStateDict(dict);
        expect(restored.stateDict()).toEqual(saved);

        for (let s = 0; s < 5; s++) {
          const g = randomArrays(rand);
          opt.step(g);
          restored.step(g.map((a) => a.slice()));
        }
        params.forEach((a, i) => {
          expect(Array.from(bits(restoredParams[i]))).toEqual(Array.from(bits(a)));
        });
        expect(restored.stateDict()).toEqual(opt.stateDict());
      });
    }
  }

  it('returns copies: changing a saved dict does not touch the optimizer', () => {
    const p = new Float32Array([1, 2]);
    const opt = new Adam([p]);
    opt.step([new Float32Array([1, 1])]);
    const d = opt.stateDict();
    d.state[0].expAvg![0] = 123;
    d.state[0].step = 50;
    expect(opt.stateDict().state[0].expAvg![0]).toBeCloseTo(0.1, 6);
    expect(opt.stateDict().state[0].step).toBe(1);
    expect(d.format).toBe(STATE_FORMAT);
  });

  it('rejects a dict that does not fit, leaving the optimizer unchanged', () => {
    const params = [new Float32Array(3), new Float32Array(2)];
    const opt = new Adam(params, { amsgrad: true });
    opt.step([new Float32Array(3).fill(1), new Float32Array(2).fill(1)]);
    const good = opt.stateDict();
    const edit = (f: (d: OptimizerStateDict) => void) => {
      const d = structuredClone(good);
      f(d);
      return d;
    };
    const W = 'Adam.loadStateDict(): ';
    const bad: Array<[OptimizerStateDict, typeof NodecclTypeError, string]> = [
      [edit((d) => { d.optimizer = 'AdamW'; }), NodecclRangeError, 'dict was saved by "AdamW"'],
      [edit((d) => { d.format = 'x' as never; }), NodecclRangeError, 'dict.format is x'],
      [edit((d) => { d.state.pop(); }), NodecclRangeError, 'dict.state has 1 entries'],
      [edit((d) => { d.state[1].expAvg = new Float32Array(3); }), NodecclRangeError,
        'dict.state[1].expAvg has 3 elements but the parameter has 2'],
      [edit((d) => { delete d.state[0].maxExpAvgSq; }), NodecclTypeError,
        'dict.state[0].maxExpAvgSq must be a Float32Array'],
      [edit((d) => { (d.state[0] as unknown as Record<string, unknown>).exp_avg = 1; }),
        NodecclTypeError, "unknown key 'exp_avg' in dict.state[0]; did you mean 'expAvg'?"],
      [edit((d) => { d.state[1].step = 1.5; }), NodecclRangeError,
        'dict.state[1].step must be a whole number >= 0, got 1.5'],
      [edit((d) => { (d.options as { eps: number }).eps = -1; }), NodecclRangeError,
        'eps must be a finite number >= 0, got -1'],
      [edit((d) => { delete (d.options as { lr?: number }).lr; }), NodecclTypeError,
        'dict.options.lr is missing'],
    ];
    for (const [dict, cls, message] of bad) {
      // Ranges are checked natively, so their messages name the optimizer only.
      const where = message.startsWith('eps') ? 'Adam: ' : W;
      expectArgError(() => opt.loadStateDict(dict), cls, where + message);
    }
    expectArgError(() => opt.loadStateDict(null as never), NodecclTypeError, 'dict must be');
    expect(opt.stateDict()).toEqual(good);
  });
});

// ---- Lion, LAMB, step control, 8-bit Adam -------------------------------------------------------

describe('Lion, LAMB and step control', () => {
  it('Lion: first step worked by hand', async () => {
    const { Lion } = await import('../../lib/optim');
    // p = 1, g = 0.5, m = 0, lr 0.1, wd 0.5: c = 0.05 > 0, p = 1 * 0.95 - 0.1 = 0.85.
    const p = new Float32Array([1]);
    const opt = new Lion([p], { lr: 0.1, weightDecay: 0.5 });
    opt.step([new Float32Array([0.5])]);
    expect(p[0]).toBeCloseTo(0.85, 6);
    expect(opt.stateDict().state[0].expAvg![0]).toBeCloseTo(0.005, 8);
  });

  it('LAMB: trust ratio worked by hand', async () => {
    const { LAMB } = await import('../../lib/optim');
    // One element, first step: u = g / |g| = 1; r = ||p|| / ||u|| = 3; p = 3 - 0.1 * 3 = 2.7.
    const p = new Float32Array([3]);
    new LAMB([p], { lr: 0.1, eps: 0 }).step([new Float32Array([2])]);
    expect(p[0]).toBeCloseTo(2.7, 5);
  });

  it('clips by global norm and reports it', () => {
    // Gradients 3 and 4: norm 5; clipped to 1: SGD lr 1 moves p by -0.6 and -0.8.
    const a = new Float32Array([0]);
    const b = new Float32Array([0]);
    const opt = new SGD([a, b], { lr: 1, maxGradNorm: 1 });
    const r = opt.step([new Float32Array([3]), new Float32Array([4])]);
    expect(r.gradNorm).toBeCloseTo(5, 12);
    expect(a[0]).toBeCloseTo(-0.6, 6);
    expect(b[0]).toBeCloseTo(-0.8, 6);
  });

  it('skips a step with a NaN gradient and names the parameter', () => {
    const a = new Float32Array([1, 1]);
    const b = new Float32Array([1, 1, 1]);
    const opt = new Adam([a, b], { skipNonFinite: true });
    const r = opt.step([new Float32Array([0.1, 0.1]), new Float32Array([0, Infinity, 0])]);
    expect(r).toMatchObject({ skipped: true, nonFiniteParam: 1, nonFiniteIndex: 1 });
    expect([...a, ...b]).toEqual([1, 1, 1, 1, 1]);
    expect(opt.stateDict().state[0].step).toBe(0);
    // With a null entry the index still refers to the caller's list.
    const r2 = opt.step([null, new Float32Array([0, NaN, 0])]);
    expect(r2.nonFiniteParam).toBe(1);
  });

  it('gradScale unscales gradients inside the update', () => {
    const a = new Float32Array([0]);
    new SGD([a], { lr: 1, gradScale: 1 / 1024 }).step([new Float32Array([2048])]);
    expect(a[0]).toBe(-2);
  });

  it('rejects bad step-control options', () => {
    expectArgError(() => new SGD([new Float32Array(1)], { maxGradNorm: -1 }), NodecclRangeError,
      /maxGradNorm must be a finite number >= 0/);
    expectArgError(() => new SGD([new Float32Array(1)], { threads: 0 }), NodecclRangeError,
      /threads must be a whole number/);
    expectArgError(() => new SGD([new Float32Array(1)],
      { skipNonFinite: 1 as unknown as boolean }), NodecclTypeError, /skipNonFinite must be a/);
  });

  it('reports the instruction set the kernels use', async () => {
    const { kernelIsa } = await import('../../lib/optim');
    expect(['baseline', 'avx2', 'avx512']).toContain(kernelIsa());
  });
});

describe('Adam8bit', () => {
  it('keeps state ~4x smaller and small tensors in 32 bits', async () => {
    const { Adam8bit } = await import('../../lib/optim');
    const big = new Float32Array(1 << 20);
    const small = new Float32Array(100);
    const opt = new Adam8bit([big, small]);
    const { bytes, bytes32bit } = opt.stateBytes();
    // big: 2 bytes + 2 scales per 2048 elements; small: 8 bytes per element.
    expect(bytes).toBe(2 * (1 << 20) + 8 * 512 + 800);
    expect(bytes32bit / bytes).toBeGreaterThan(3.95);
  });

  it('first step moves every element by ~lr * sign(g), like Adam', async () => {
    const { Adam8bit } = await import('../../lib/optim');
    const n = 5000;
    const p = new Float32Array(n);
    const g = Float32Array.from({ length: n }, (_, i) => (i % 2 ? 1 : -1) * (0.2 + (i % 7) / 10));
    const small = new Float32Array([0]);
    new Adam8bit([p, small], { lr: 0.01 }).step([g, new Float32Array([3])]);
    for (let i = 0; i < n; i++) expect(Math.abs(p[i] + 0.01 * Math.sign(g[i]))).toBeLessThan(3e-4);
    expect(small[0]).toBeCloseTo(-0.01, 6);  // the 32-bit path, exact Adam
  });

  it('refuses amsgrad', async () => {
    const { Adam8bit } = await import('../../lib/optim');
    expectArgError(() => new Adam8bit([new Float32Array(1)],
      { amsgrad: true } as unknown as object), NodecclTypeError, /amsgrad is not supported/);
  });
});
