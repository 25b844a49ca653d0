// SPDX-License-Identifier: Apache-2.0
// Tensors, dtypes and option checking: zero-copy wrapping, shapes, error wording, and the
// native float16/bfloat16 conversions against hand-worked values and exhaustive sweeps.
import * as vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import {
  arrayConstructor, checkDType, checkReduceOp, DTYPE_CODES, DTYPE_SIZES, DTYPES, dtypeSize,
  inferDType, REDUCE_OP_CODES, REDUCE_OPS, type DType,
} from '../../lib/dtype';
import { NodecclRangeError, NodecclTypeError } from '../../lib/errors';
import { native } from '../../lib/native';
import { checkOptions, didYouMean, editDistance } from '../../lib/options';
import {
  fromBFloat16, fromFloat16, Tensor, tensor, toBFloat16, toFloat16, zeros,
} from '../../lib/tensor';

/** Runs `fn` and returns what it threw (failing the test when it throws nothing). */
function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a throw');
}

const hex = (a: ArrayLike<number>) => Array.from(a, (v) => `0x${v.toString(16).padStart(4, '0')}`);

describe('dtype tables', () => {
  it('number dtypes and ops as cpp/common/dtype.h does', () => {
    expect(DTYPE_CODES).toEqual({
      float32: 0, float64: 1, int32: 2, int8: 3, uint8: 4, float16: 5, bfloat16: 6,
    });
    expect(REDUCE_OP_CODES).toEqual({ sum: 0, prod: 1, min: 2, max: 3, avg: 4 });
    expect(DTYPES.map((d) => DTYPE_CODES[d])).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(REDUCE_OPS.map((o) => REDUCE_OP_CODES[o])).toEqual([0, 1, 2, 3, 4]);
  });

  it('match the native tables exactly (codes and element sizes)', () => {
    const table = native().dtypeTable;
    expect(Object.keys(table).sort()).toEqual([...DTYPES].sort());
    for (const d of DTYPES) expect(table[d]).toEqual({ code: DTYPE_CODES[d], size: dtypeSize(d) });
    expect(native().reduceOpTable).toEqual(REDUCE_OP_CODES);
  });

  it('map each dtype to its TypedArray and element size', () => {
    const expected: Record<DType, [unknown, number]> = {
      float32: [Float32Array, 4], float64: [Float64Array, 8], int32: [Int32Array, 4],
      int8: [Int8Array, 1], uint8: [Uint8Array, 1], float16: [Uint16Array, 2],
      bfloat16: [Uint16Array, 2],
    };
    for (const d of DTYPES) {
      expect(arrayConstructor(d)).toBe(expected[d][0]);
      expect(DTYPE_SIZES[d]).toBe(expected[d][1]);
      expect(arrayConstructor(d).BYTES_PER_ELEMENT).toBe(dtypeSize(d));
    }
  });

  it('infer the dtype of unambiguous arrays, Buffers and arrays from another realm', () => {
    expect(inferDType(new Float32Array(1))).toBe('float32');
    expect(inferDType(new Float64Array(1))).toBe('float64');
    expect(inferDType(new Int32Array(1))).toBe('int32');
    expect(inferDType(new Int8Array(1))).toBe('int8');
    expect(inferDType(new Uint8Array(1))).toBe('uint8');
    expect(inferDType(Buffer.alloc(3))).toBe('uint8');
    expect(inferDType(vm.runInNewContext('new Float64Array(2)'))).toBe('float64');
  });

  it('refuse to guess for a Uint16Array, and name the fix', () => {
    const e = thrown(() => inferDType(new Uint16Array(2)));
    expect(e).toBeInstanceOf(NodecclTypeError);
    expect(e.code).toBe('ERR_NODECCL_INVALID_ARGUMENT');
    expect(e.message).toMatch(/float16.*bfloat16/);
    expect(e.message).toContain("dtype 'float16'");
  });

  it('reject arrays with no dtype and non-arrays', () => {
    for (const a of [new Int16Array(1), new Uint32Array(1), new Uint8ClampedArray(1),
      new BigInt64Array(1)]) {
      const e = thrown(() => inferDType(a));
      expect(e).toBeInstanceOf(NodecclTypeError);
      expect(e.message).toContain(a.constructor.name);
    }
    expect(thrown(() => inferDType([1, 2]))).toBeInstanceOf(NodecclTypeError);
    expect(thrown(() => inferDType(new DataView(new ArrayBuffer(4))))).toBeInstanceOf(
      NodecclTypeError);
    expect(thrown(() => inferDType(new Int16Array(1), 'allReduce(): tensor')).message)
      .toMatch(/^allReduce\(\): tensor: Int16Array/);
  });

  it('suggest the dtype or op that was meant', () => {
    expect(thrown(() => checkDType('f()', 'fp16')).message).toContain("did you mean 'float16'");
    expect(thrown(() => checkDType('f()', 'flaot32')).message).toContain("'float32'");
    expect(thrown(() => checkDType('f()', 'Float64')).message).toContain("'float64'");
    expect(thrown(() => checkDType('f()', 'bf16')).message).toContain("'bfloat16'");
    const far = thrown(() => checkDType('f()', 'complex128'));
    expect(far.message).not.toContain('did you mean');
    expect(far.message).toContain('Supported: float32, float64');
    expect(thrown(() => checkDType('f()', 7)).message).toContain('dtype 7');
    expect(thrown(() => checkReduceOp('f()', 'mean')).message).toContain("did you mean 'avg'");
    expect(thrown(() => checkReduceOp('f()', 'summ')).message).toContain("'sum'");
    expect(checkReduceOp('f()', 'max')).toBe('max');
  });
});

describe('checkOptions', () => {
  it('accepts undefined and known keys', () => {
    expect(checkOptions('f()', undefined, ['a'])).toEqual({});
    const o = { a: 1 };
    expect(checkOptions('f()', o, ['a', 'b'])).toBe(o);
  });

  it('rejects unknown keys with a suggestion and the allowed list', () => {
    const e = thrown(() => checkOptions('tensor()', { dtyp: 'float32' }, ['dtype', 'shape']));
    expect(e).toBeInstanceOf(NodecclTypeError);
    expect(e.message).toBe("tensor(): unknown option 'dtyp'; did you mean 'dtype'? " +
      'Allowed options: dtype, shape.');
    const far = thrown(() => checkOptions('f()', { zzz: 1 }, ['dtype']));
    expect(far.message).toBe("f(): unknown option 'zzz'. Allowed options: dtype.");
    expect(thrown(() => checkOptions('init', { worldsize: 2 }, ['rank', 'worldSize'])).message)
      .toContain("did you mean 'worldSize'");
  });

  it('rejects non-objects', () => {
    for (const bad of [null, 3, 'x', [1]]) {
      expect(thrown(() => checkOptions('f()', bad as never, ['a']))).toBeInstanceOf(
        NodecclTypeError);
    }
  });

  it('measures edits (with transpositions) and keeps suggestions plausible', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('flaot', 'float')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(didYouMean('shap', ['dtype', 'shape'])).toBe('shape');
    expect(didYouMean('x', ['dtype', 'shape'])).toBeUndefined();
  });
});

describe('tensor()', () => {
  it('wraps a TypedArray without copying', () => {
    const a = new Float32Array([1, 2, 3, 4, 5, 6]);
    const t = tensor(a, { shape: [2, 3] });
    expect(t.data).toBe(a);
    expect(t.dtype).toBe('float32');
    expect(t.shape).toEqual([2, 3]);
    expect(t.size).toBe(6);
    expect(t.byteLength).toBe(24);
    t.data[0] = 42;
    expect(a[0]).toBe(42);
    expect(Object.isFrozen(t.shape)).toBe(true);
    expect(t).toBeInstanceOf(Tensor);
    expect(String(t)).toBe('Tensor(float32, [2, 3])');
  });

  it('infers the dtype and a flat shape; accepts a number, [] and zero-size shapes', () => {
    expect(tensor(new Int8Array(4)).shape).toEqual([4]);
    expect(tensor(new Int32Array(4)).dtype).toBe('int32');
    expect(tensor(new Float64Array(5), { shape: 5 }).shape).toEqual([5]);
    expect(tensor(new Float32Array(1), { shape: [] }).shape).toEqual([]);
    expect(tensor(new Uint8Array(0), { shape: [3, 0] }).size).toBe(0);
    const sub = new Float32Array(new ArrayBuffer(64), 16, 4);
    expect(tensor(sub).byteLength).toBe(16);
  });

  it('names the dtype and the array on a mismatch', () => {
    const e = thrown(() => tensor(new Float64Array(2), { dtype: 'float32' } as never));
    expect(e).toBeInstanceOf(NodecclTypeError);
    expect(e.code).toBe('ERR_NODECCL_INVALID_ARGUMENT');
    expect(e.message).toMatch(
      /^tensor\(\): dtype 'float32' needs a Float32Array, got Float64Array/);
    expect(e.message).toContain("{ dtype: 'float64' }");
    const h = thrown(() => tensor(new Float32Array(2), { dtype: 'float16' } as never));
    expect(h.message).toContain('needs a Uint16Array, got Float32Array');
    expect(h.message).toContain('toFloat16');
    expect(thrown(() => tensor(new Uint16Array(2), { dtype: 'int32' } as never)).message)
      .toContain("'float16'");
  });

  it('needs a dtype for a Uint16Array, and takes either 16-bit float', () => {
    expect(thrown(() => tensor(new Uint16Array(2))).message).toMatch(/float16.*bfloat16/);
    const bits = new Uint16Array([0x3c00]);
    expect(tensor(bits, { dtype: 'float16' }).data).toBe(bits);
    expect(tensor(bits, { dtype: 'bfloat16' }).dtype).toBe('bfloat16');
  });

  it('checks the shape against the length', () => {
    const e = thrown(() => tensor(new Float32Array(5), { shape: [2, 3] }));
    expect(e).toBeInstanceOf(NodecclRangeError);
    expect(e.message).toContain('shape [2, 3] holds 6 elements but the data has 5');
    for (const bad of [[-1, 2], [1.5], [NaN], [Infinity]]) {
      const r = thrown(() => tensor(new Float32Array(2), { shape: bad }));
      expect(r).toBeInstanceOf(NodecclRangeError);
      expect(r.message).toMatch(/shape\[0\] = .* is not a valid dimension/);
    }
    expect(thrown(() => tensor(new Float32Array(2), { shape: ['2'] as never }))).toBeInstanceOf(
      NodecclTypeError);
    expect(thrown(() => tensor(new Float32Array(2), { shape: 'x' as never }))).toBeInstanceOf(
      NodecclTypeError);
  });

  it('copies number arrays into the dtype (float32 by default)', () => {
    const values = [1, 2.5, -3];
    const t = tensor(values);
    expect(t.data).toBeInstanceOf(Float32Array);
    expect(Array.from(t.data)).toEqual(values);
    const d = tensor(values, { dtype: 'float64', shape: [3, 1] });
    expect(d.data).toBeInstanceOf(Float64Array);
    expect(d.shape).toEqual([3, 1]);
    expect(Array.from(tensor([-128, 127], { dtype: 'int8' }).data)).toEqual([-128, 127]);
    expect(Array.from(tensor([0, 255], { dtype: 'uint8' }).data)).toEqual([0, 255]);
    expect(tensor([], { dtype: 'int32' }).size).toBe(0);
  });

  it('rejects numbers that an integer dtype cannot hold, and non-numbers', () => {
    const e = thrown(() => tensor([1, 128], { dtype: 'int8' }));
    expect(e).toBeInstanceOf(NodecclRangeError);
    expect(e.message).toBe('tensor(): data[1] = 128 is not a valid int8 (an integer from -128 ' +
      'to 127); round or clamp it, or pick another dtype');
    expect(thrown(() => tensor([0.5], { dtype: 'int32' }))).toBeInstanceOf(NodecclRangeError);
    expect(thrown(() => tensor([-1], { dtype: 'uint8' }))).toBeInstanceOf(NodecclRangeError);
    expect(thrown(() => tensor([1, '2'] as never)).message).toContain('data[1] is "2"');
    expect(thrown(() => tensor([[1, 2], [3, 4]] as never)).message).toContain('flat array');
  });

  it('rounds number arrays to float16 and bfloat16 bits', () => {
    // 1 = 0x3c00, -2 = 0xc000, 0.5 = 0x3800, 65504 (largest half) = 0x7bff,
    // 65520 is the tie between 65504 and 2^16: rounds to the even side, which is Infinity.
    const h = tensor([1, -2, 0.5, 65504, 65520, NaN, -Infinity], { dtype: 'float16' });
    expect(h.data).toBeInstanceOf(Uint16Array);
    expect(hex(h.data)).toEqual(
      ['0x3c00', '0xc000', '0x3800', '0x7bff', '0x7c00', '0x7e00', '0xfc00']);
    // bfloat16 keeps 7 mantissa bits: 1 = 0x3f80; 1 + 2^-8 ties to even 0x3f80;
    // 1 + 3 * 2^-8 ties between 0x3f81 (odd) and 0x3f82 (even) -> 0x3f82.
    const b = tensor([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -0, NaN], { dtype: 'bfloat16' });
    expect(hex(b.data)).toEqual(['0x3f80', '0x3f80', '0x3f82', '0x8000', '0x7fc0']);
  });

  it('rejects unknown options and dtypes with a suggestion, and Tensors as data', () => {
    const e = thrown(() => tensor(new Float32Array(1), { dtyp: 'float32' } as never));
    expect(e).toBeInstanceOf(NodecclTypeError);
    expect(e.message).toContain("did you mean 'dtype'");
    expect(thrown(() => tensor([1], { dtype: 'float' as DType })).message)
      .toContain("did you mean 'float32'");
    const t = tensor(new Float32Array(2));
    expect(thrown(() => tensor(t as never)).message).toContain('already a Tensor');
    expect(thrown(() => tensor(5 as never)).message).toContain('TypedArray or an array');
  });
});

describe('Tensor', () => {
  it('constructor validates like tensor()', () => {
    expect(new Tensor(new Int32Array(6), 'int32', [3, 2]).shape).toEqual([3, 2]);
    expect(thrown(() => new Tensor(new Int32Array(6) as never, 'float32')).message)
      .toContain("new Tensor(): dtype 'float32' needs a Float32Array, got Int32Array");
    expect(thrown(() => new Tensor(new Int32Array(6), 'int32', [4]))).toBeInstanceOf(
      NodecclRangeError);
  });

  it('reshape() shares the data and infers one -1', () => {
    const t = tensor(new Float32Array(12));
    const r = t.reshape([3, -1]);
    expect(r.shape).toEqual([3, 4]);
    expect(r.data).toBe(t.data);
    expect(t.reshape(12).shape).toEqual([12]);
    expect(t.reshape([2, 2, 3]).shape).toEqual([2, 2, 3]);
    expect(thrown(() => t.reshape([5, -1])).message).toContain('cannot infer the -1');
    expect(thrown(() => t.reshape([0, -1])).message).toContain('cannot infer the -1');
    expect(thrown(() => t.reshape([5, 5])).message).toContain('holds 25 elements but the data ' +
      'has 12');
    expect(thrown(() => t.reshape([-1, -1]))).toBeInstanceOf(NodecclRangeError);
  });

  it('toFloat32() widens halves exactly and always copies', () => {
    const h = tensor(new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7c00]), { dtype: 'float16',
      shape: [2, 2] });
    const f = h.toFloat32();
    expect(f.dtype).toBe('float32');
    expect(f.shape).toEqual([2, 2]);
    expect(Array.from(f.data)).toEqual([1, -2, 2 ** -24, Infinity]);
    const b = tensor(new Uint16Array([0x3f80, 0x4049]), { dtype: 'bfloat16' }).toFloat32();
    expect(Array.from(b.data)).toEqual([1, 3.140625]);  // 0x4049 = 0x40490000 = 3.140625
    const i = tensor(new Int32Array([7, -7])).toFloat32();
    expect(Array.from(i.data)).toEqual([7, -7]);
    const g = tensor(new Float32Array([1]));
    expect(g.toFloat32().data).not.toBe(g.data);
  });
});

describe('zeros()', () => {
  it('allocates zeros of the dtype and shape', () => {
    const z = zeros([2, 3]);
    expect(z.dtype).toBe('float32');
    expect(z.data).toBeInstanceOf(Float32Array);
    expect(Array.from(z.data)).toEqual([0, 0, 0, 0, 0, 0]);
    const h = zeros(4, { dtype: 'bfloat16' });
    expect(h.data).toBeInstanceOf(Uint16Array);
    expect(h.shape).toEqual([4]);
    expect(zeros([0]).size).toBe(0);
  });

  it('validates shape, dtype and options', () => {
    expect(thrown(() => zeros([-2]))).toBeInstanceOf(NodecclRangeError);
    expect(thrown(() => zeros([2], { dtype: 'half' as DType })).message).toContain("'float16'");
    expect(thrown(() => zeros([2], { shape: [2] } as never)).message).toContain("'shape'");
    expect(thrown(() => zeros([2 ** 40, 2 ** 20]))).toBeInstanceOf(NodecclRangeError);
    expect(thrown(() => zeros([2 ** 40])).message).toContain('cannot allocate');
  });
});

// Reference rounding of a double to binary16 bits, independent of the native code: scale to
// an integer mantissa at the value's exponent (clamped to the subnormal one), round half even.
function refHalf(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  let e = -14;
  while (e < 15 && 2 ** (e + 1) <= a) e++;
  const q = a / 2 ** (e - 10);
  let m = Math.floor(q);
  if (q - m > 0.5 || (q - m === 0.5 && m % 2 === 1)) m++;
  // m counts units of 2^(e-10); m == 2048 carries into the next exponent.
  const bits = e === -14 && m < 1024 ? m : ((e + 15) << 10) + m - 1024;
  return sign | Math.min(bits, 0x7c00);
}

describe('float16 conversion', () => {
  it('gives hand-worked bits, including subnormals and ties', () => {
    // 2^-24 is the smallest subnormal (0x0001); 2^-25 ties between 0 and it -> 0 (even);
    // 3 * 2^-25 ties between 0x0001 and 0x0002 -> 0x0002; 2^-14 is the smallest normal;
    // 1e-8 is below 2^-25 -> 0; 1e5 overflows to Infinity.
    const bits = toFloat16([2 ** -24, 2 ** -25, 3 * 2 ** -25, 2 ** -14, 1e-8, -1e5, -0]);
    expect(hex(bits)).toEqual(
      ['0x0001', '0x0000', '0x0002', '0x0400', '0x0000', '0xfc00', '0x8000']);
    expect(Array.from(fromFloat16(new Uint16Array([0x0001, 0x03ff, 0x0400, 0x7bff]))))
      .toEqual([2 ** -24, 1023 * 2 ** -24, 2 ** -14, 65504]);
    expect(fromFloat16(new Uint16Array([0x7e00]))[0]).toBeNaN();
  });

  it('rounds doubles once (no double rounding through float32)', () => {
    // 1 + 2^-11 is the tie between 1 (0x3c00) and 1 + 2^-10 (0x3c01); 2^-40 above it must
    // round up. Through float32 the 2^-40 is lost first and the tie goes to even, 0x3c00.
    const x = 1 + 2 ** -11 + 2 ** -40;
    expect(toFloat16([x])[0]).toBe(0x3c01);
    expect(toFloat16(Float64Array.of(x))[0]).toBe(0x3c01);
    expect(toFloat16(Float32Array.of(x))[0]).toBe(0x3c00);
  });

  it('round-trips every one of the 65536 bit patterns', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const wide = fromFloat16(all);
    const back = toFloat16(wide);
    for (let i = 0; i < 65536; i++) {
      const nan = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (nan) {
        if (!Number.isNaN(wide[i]) || (back[i] & 0x7fff) <= 0x7c00) {
          throw new Error(`NaN 0x${i.toString(16)} lost`);
        }
      } else if (back[i] !== i) {
        throw new Error(`0x${i.toString(16)} -> ${wide[i]} -> 0x${back[i].toString(16)}`);
      }
    }
  });

  it('rounds every midpoint between neighbouring halves to the even one', () => {
    const lo = Uint16Array.from({ length: 0x7bff }, (_, i) => i);  // 0 .. 0x7bfe
    const loF = fromFloat16(lo);
    const hiF = fromFloat16(Uint16Array.from(lo, (v) => v + 1));
    const mid = Float64Array.from(loF, (v, i) => (v + hiF[i]) / 2);
    const fromDouble = toFloat16(mid);
    const fromFloat = toFloat16(Float32Array.from(mid));  // midpoints are exact in float32
    for (let i = 0; i < lo.length; i++) {
      const even = lo[i] % 2 === 0 ? lo[i] : lo[i] + 1;
      if (fromDouble[i] !== even || fromFloat[i] !== even) {
        throw new Error(`midpoint above 0x${lo[i].toString(16)} gave 0x` +
          `${fromDouble[i].toString(16)} / 0x${fromFloat[i].toString(16)}`);
      }
    }
  });

  it('agrees with a reference on random doubles', () => {
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const values = Float64Array.from({ length: 20000 }, () =>
      (rand() - 0.5) * 2 ** Math.floor(rand() * 46 - 28));
    const bits = toFloat16(values);
    for (let i = 0; i < values.length; i++) {
      if (bits[i] !== refHalf(values[i])) {
        throw new Error(`${values[i]} -> 0x${bits[i].toString(16)}, expected ` +
          `0x${refHalf(values[i]).toString(16)}`);
      }
    }
  });

  it('fills an out array and checks arguments', () => {
    const out = new Uint16Array(2);
    expect(toFloat16([1, 2], out)).toBe(out);
    expect(hex(out)).toEqual(['0x3c00', '0x4000']);
    const f = new Float32Array(2);
    expect(fromFloat16(out, f)).toBe(f);
    expect(Array.from(f)).toEqual([1, 2]);
    expect(thrown(() => toFloat16([1], new Uint16Array(2)))).toBeInstanceOf(NodecclRangeError);
    expect(thrown(() => toFloat16([1], new Int16Array(1) as never))).toBeInstanceOf(
      NodecclTypeError);
    expect(thrown(() => toFloat16(new Int32Array(1) as never)).message).toContain('Int32Array');
    expect(thrown(() => toFloat16(['a'] as never))).toBeInstanceOf(NodecclTypeError);
    expect(thrown(() => fromFloat16(new Float32Array(1) as never)).message)
      .toContain('must be a Uint16Array');
    expect(toFloat16([]).length).toBe(0);
  });

  it('refuses overlapping input and output (checked natively)', () => {
    const buf = new ArrayBuffer(16);
    const e = thrown(() => fromFloat16(new Uint16Array(buf, 0, 2), new Float32Array(buf, 0, 2)));
    expect(e).toBeInstanceOf(NodecclRangeError);
    expect(e.message).toContain('share memory');
  });
});

// Reference float32 -> bfloat16: round the low 16 bits of the float32 to nearest even.
function refBf16(f: number): number {
  const u = new Uint32Array(Float32Array.of(f).buffer)[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

describe('bfloat16 conversion', () => {
  it('round-trips every bit pattern', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const wide = fromBFloat16(all);
    const back = toBFloat16(wide);
    for (let i = 0; i < 65536; i++) {
      const nan = (i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0;
      if (nan ? !Number.isNaN(wide[i]) || (back[i] & 0x7fff) <= 0x7f80 : back[i] !== i) {
        throw new Error(`0x${i.toString(16)} -> 0x${back[i].toString(16)}`);
      }
    }
  });

  it('agrees with a reference on random float32 bit patterns, and overflows to Infinity', () => {
    const raw = new Uint32Array(20000);
    let seed = 99;
    for (let i = 0; i < raw.length; i++) {
      seed = (seed * 1664525 + 1013904223) >>> 0;
      raw[i] = seed;
    }
    const floats = new Float32Array(raw.buffer);
    const bits = toBFloat16(floats);
    for (let i = 0; i < floats.length; i++) {
      if (bits[i] !== refBf16(floats[i])) {
        throw new Error(`0x${raw[i].toString(16)} -> 0x${bits[i].toString(16)}`);
      }
    }
    // The largest float32 (0x7f7fffff) is above the last bfloat16 (0x7f7f) by more than half
    // a bfloat16 step, so it rounds to Infinity (0x7f80).
    // 2^-133 is bfloat16's smallest subnormal (0x0001); 2^-134 ties between it and 0 -> 0.
    expect(hex(toBFloat16([3.4028234663852886e38, 1e39, 2 ** -133, 2 ** -134])))
      .toEqual(['0x7f80', '0x7f80', '0x0001', '0x0000']);
    expect(fromBFloat16(new Uint16Array([0x0001]))[0]).toBe(2 ** -133);
  });
});
