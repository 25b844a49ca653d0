// SPDX-License-Identifier: Apache-2.0
// Tensors: a TypedArray plus a dtype and a shape, shared with the caller without copying, and
// the float16 / bfloat16 conversions (done natively, round to nearest even).
import {
  arrayConstructor, arrayNameOf, checkDType, dtypeOfArray, isHalfDType, isIntegerDType,
  typedArrayName, type DType, type DTypeArray, type DTypeArrayMap,
} from './dtype';
import { checkBuffer } from './buffers';
import { fromNative, NodecclRangeError, NodecclTypeError } from './errors';
import { native } from './native';
import { checkOptions, describeValue } from './options';

/** Options of {@link tensor}. */
export interface TensorOptions<D extends DType = DType> {
  /**
   * The element type. Default: the dtype of a TypedArray `data` (a Uint16Array needs an
   * explicit `'float16'` or `'bfloat16'`), `'float32'` for a plain number array.
   */
  dtype?: D;
  /** Dimensions; their product must equal the number of elements. Default: `[length]`. */
  shape?: number | readonly number[];
}

/** Options of {@link zeros}. */
export interface ZerosOptions<D extends DType = DType> {
  /** The element type. Default `'float32'`. */
  dtype?: D;
}

const INT_RANGES: Readonly<Record<'int32' | 'int8' | 'uint8', readonly [number, number]>> = {
  int32: [-2147483648, 2147483647],
  int8: [-128, 127],
  uint8: [0, 255],
};

/** The number of elements a shape holds: the product of its dimensions (1 for `[]`). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function formatShape(shape: readonly unknown[]): string {
  return `[${shape.map((d) => describeValue(d)).join(', ')}]`;
}

// Validates a shape argument and returns a frozen copy. With `allowInfer`, one dimension may
// be -1 (it is returned as -1 for the caller to fill in).
function checkShape(
  fnName: string, shape: unknown, allowInfer = false,
): readonly number[] {
  const dims = typeof shape === 'number' ? [shape] : shape;
  if (!Array.isArray(dims)) {
    throw new NodecclTypeError(`${fnName}: shape must be an array of integers >= 0 such as ` +
      `[2, 3], got ${describeValue(shape)}`);
  }
  let inferred = -1;
  for (let i = 0; i < dims.length; i++) {
    const d: unknown = dims[i];
    if (typeof d !== 'number') {
      throw new NodecclTypeError(`${fnName}: shape[${i}] is ${describeValue(d)}, not a ` +
        `number; shape ${formatShape(dims)} must hold integers >= 0`);
    }
    if (allowInfer && d === -1 && inferred < 0) {
      inferred = i;
      continue;
    }
    if (!Number.isSafeInteger(d) || d < 0) {
      const also = allowInfer ? ' (or a single -1, inferred from the element count)' : '';
      throw new NodecclRangeError(`${fnName}: shape[${i}] = ${d} in shape ` +
        `${formatShape(dims)} is not a valid dimension; use integers >= 0${also}`);
    }
  }
  const copy = dims.slice() as number[];
  if (!Number.isSafeInteger(shapeSize(copy.filter((d) => d >= 0)))) {
    throw new NodecclRangeError(`${fnName}: shape ${formatShape(dims)} holds more than ` +
      `${Number.MAX_SAFE_INTEGER} elements; use smaller dimensions`);
  }
  return Object.freeze(copy);
}

// Array.isArray that also narrows readonly arrays (TypeScript's does not).
function isArray(value: unknown): value is readonly unknown[] {
  return Array.isArray(value);
}

function lengthMismatch(fnName: string, shape: readonly number[], length: number): never {
  throw new NodecclRangeError(`${fnName}: shape ${formatShape(shape)} holds ` +
    `${shapeSize(shape)} elements but the data has ${length}; pass a shape whose dimensions ` +
    `multiply to ${length}`);
}

// The fix to suggest when `data` is not the TypedArray that `dtype` needs.
function arrayFix(dtype: DType, got: string, gotDType: DType | undefined): string {
  const want = arrayNameOf(dtype);
  if (isHalfDType(dtype)) {
    const fn = dtype === 'float16' ? 'toFloat16' : 'toBFloat16';
    return `convert floats with ${fn}(values), or pass a plain number array`;
  }
  if (got === 'Uint16Array') {
    return "pass { dtype: 'float16' } or { dtype: 'bfloat16' } for 16-bit float bits, or " +
      `convert with ${want}.from(data)`;
  }
  if (gotDType !== undefined) {
    return `pass { dtype: '${gotDType}' }, or convert with ${want}.from(data)`;
  }
  return `convert with ${want}.from(data)`;
}

function checkArrayForDType(fnName: string, data: unknown, dtype: DType): void {
  const name = typedArrayName(data);
  const want = arrayNameOf(dtype);
  if (name === want) return;
  const got = name ?? describeValue(data);
  throw new NodecclTypeError(`${fnName}: dtype '${dtype}' needs a ${want}, got ${got}; ` +
    arrayFix(dtype, got, dtypeOfArray(data)));
}

// Checks that every element is a number (an integer in range for integer dtypes).
function checkNumbers(fnName: string, values: readonly unknown[], dtype: DType): void {
  const range = isIntegerDType(dtype) ? INT_RANGES[dtype] : undefined;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number') {
      const fix = Array.isArray(v)
        ? 'pass a flat array and a shape, e.g. tensor(rows.flat(), { shape: [rows.length, n] })'
        : 'every element must be a number';
      throw new NodecclTypeError(`${fnName}: data[${i}] is ${describeValue(v)}; ${fix}`);
    }
    if (range !== undefined && !(Number.isInteger(v) && v >= range[0] && v <= range[1])) {
      throw new NodecclRangeError(`${fnName}: data[${i}] = ${v} is not a valid ${dtype} ` +
        `(an integer from ${range[0]} to ${range[1]}); round or clamp it, or pick another dtype`);
    }
  }
}

// Copies a plain number array into a new array of `dtype` (halves rounded to nearest even).
function fromNumbers<D extends DType>(
  fnName: string, values: readonly unknown[], dtype: D,
): DTypeArrayMap[D] {
  checkNumbers(fnName, values, dtype);
  const numbers = values as readonly number[];
  if (dtype === 'float16') return halves('floatToHalf', Float64Array.from(numbers)) as never;
  if (dtype === 'bfloat16') return halves('floatToBFloat16', Float64Array.from(numbers)) as never;
  const Ctor = arrayConstructor(dtype) as unknown as { from(v: ArrayLike<number>): DTypeArray };
  return Ctor.from(numbers) as DTypeArrayMap[D];
}

/**
 * A typed, shaped view of a TypedArray. The tensor does not own a copy: `data` is the very
 * array it was made from, so collectives that write into the tensor write into that array.
 *
 * @typeParam D - the element type; `data` is the matching TypedArray (`Uint16Array` holding
 *   raw bits for `float16` and `bfloat16`).
 */
export class Tensor<D extends DType = DType> {
  /** The elements, row-major. Shared with whoever made the tensor. */
  readonly data: DTypeArrayMap[D];
  /** The element type. */
  readonly dtype: D;
  /** The dimensions (frozen); their product is `size`. */
  readonly shape: readonly number[];

  /**
   * Wraps `data` without copying. Prefer {@link tensor}, which also accepts number arrays and
   * infers the dtype.
   *
   * @throws NodecclTypeError when `data` is not the TypedArray `dtype` needs.
   * @throws NodecclRangeError when the shape is invalid or does not match `data.length`.
   */
  constructor(data: DTypeArrayMap[D], dtype: D, shape?: number | readonly number[]) {
    const fn = 'new Tensor()';
    checkDType(fn, dtype);
    checkArrayForDType(fn, data, dtype);
    checkBuffer(fn, 'data', data);
    const dims = shape === undefined ? Object.freeze([data.length]) : checkShape(fn, shape);
    if (shapeSize(dims) !== data.length) lengthMismatch(fn, dims, data.length);
    this.data = data;
    this.dtype = dtype;
    this.shape = dims;
  }

  /** The number of elements. */
  get size(): number {
    return this.data.length;
  }

  /** The number of bytes the elements occupy. */
  get byteLength(): number {
    return this.data.byteLength;
  }

  /**
   * The same elements (shared, not copied) under another shape. One dimension may be -1: it is
   * inferred from the element count.
   *
   * @throws NodecclRangeError when the shape does not hold exactly `size` elements.
   */
  reshape(shape: number | readonly number[]): Tensor<D> {
    const fn = 'Tensor.reshape()';
    const dims = checkShape(fn, shape, true);
    const at = dims.indexOf(-1);
    if (at < 0) {
      if (shapeSize(dims) !== this.size) lengthMismatch(fn, dims, this.size);
      return new Tensor(this.data, this.dtype, dims);
    }
    const known = shapeSize(dims.filter((_, i) => i !== at));
    if (known === 0 || this.size % known !== 0) {
      throw new NodecclRangeError(`${fn}: cannot infer the -1 in ${formatShape(dims)} for a ` +
        `tensor of ${this.size} elements: the other dimensions multiply to ${known}, which ` +
        `does not divide ${this.size}`);
    }
    const filled = dims.slice();
    filled[at] = this.size / known;
    return new Tensor(this.data, this.dtype, filled);
  }

  /**
   * A new float32 tensor of the same shape holding these values: halves are widened exactly,
   * float64 values rounded to nearest. Always a copy, even for a float32 tensor.
   */
  toFloat32(): Tensor<'float32'> {
    let out: Float32Array;
    if (this.dtype === 'float16') out = fromFloat16(this.data as Uint16Array);
    else if (this.dtype === 'bfloat16') out = fromBFloat16(this.data as Uint16Array);
    else out = new Float32Array(this.data as ArrayLike<number>);
    return new Tensor(out, 'float32', this.shape);
  }

  /** E.g. `Tensor(float16, [2, 3])`. */
  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}])`;
  }
}

/**
 * Makes a tensor.
 *
 * - A TypedArray is used as is (zero copy: the tensor's `data` IS that array). Its dtype is
 *   inferred, except for a Uint16Array, which needs `dtype: 'float16'` or `'bfloat16'`.
 * - A plain number array is copied into a new array of `dtype` (default `'float32'`); for the
 *   16-bit floats the numbers are rounded to nearest even.
 *
 * @example
 * ```ts
 * const w = tensor(new Float32Array(6), { shape: [2, 3] });   // shares the array
 * const h = tensor([1, 0.5, -2], { dtype: 'float16' });        // Uint16Array of bits
 * ```
 * @throws NodecclTypeError for an unknown option or dtype, or a dtype/array mismatch such as
 *   a Float64Array with dtype 'float32'.
 * @throws NodecclRangeError when the shape is invalid or does not match the length, or an
 *   integer dtype is given a non-integer or out-of-range number.
 */
export function tensor<D extends DType>(
  data: DTypeArrayMap[D] | readonly number[], options: TensorOptions<D> & { dtype: D },
): Tensor<D>;
export function tensor(data: Float32Array | readonly number[],
  options?: TensorOptions<'float32'>): Tensor<'float32'>;
export function tensor(data: Float64Array, options?: TensorOptions<'float64'>):
  Tensor<'float64'>;
export function tensor(data: Int32Array, options?: TensorOptions<'int32'>): Tensor<'int32'>;
export function tensor(data: Int8Array, options?: TensorOptions<'int8'>): Tensor<'int8'>;
export function tensor(data: Uint8Array, options?: TensorOptions<'uint8'>): Tensor<'uint8'>;
export function tensor(data: DTypeArray | readonly number[], options?: TensorOptions): Tensor;
export function tensor(
  data: DTypeArray | readonly number[], options?: TensorOptions,
): Tensor {
  const fn = 'tensor()';
  const opts = checkOptions(fn, options, ['dtype', 'shape']);
  const dtype = opts.dtype === undefined ? undefined : checkDType(fn, opts.dtype);
  const shape = opts.shape === undefined ? undefined : checkShape(fn, opts.shape);
  let array: DTypeArray;
  if (isArray(data)) {
    array = fromNumbers(fn, data, dtype ?? 'float32');
  } else if (data instanceof Tensor) {
    throw new NodecclTypeError(`${fn}: data is already a Tensor (${String(data)}); use its ` +
      '.reshape(shape) for another shape, or its .data for the array');
  } else if (dtype !== undefined) {
    checkArrayForDType(fn, data, dtype);
    array = data;
  } else {
    if (typedArrayName(data) === undefined) {
      throw new NodecclTypeError(`${fn}: data must be a TypedArray or an array of numbers, ` +
        `got ${describeValue(data)}`);
    }
    requireKnownArray(fn, data);
    array = data;
  }
  if (shape !== undefined && shapeSize(shape) !== array.length) {
    lengthMismatch(fn, shape, array.length);
  }
  return new Tensor(array, dtype ?? (dtypeOfArray(array) as DType), shape);
}

// Like inferDType() with tensor()'s wording: throws for Uint16Array and unsupported arrays.
function requireKnownArray(fn: string, data: unknown): void {
  if (dtypeOfArray(data) !== undefined) return;
  if (typedArrayName(data) === 'Uint16Array') {
    throw new NodecclTypeError(`${fn}: a Uint16Array may hold float16 or bfloat16 bits; pass ` +
      "{ dtype: 'float16' } or { dtype: 'bfloat16' }");
  }
  throw new NodecclTypeError(`${fn}: ${typedArrayName(data)} has no nodeccl dtype; use a ` +
    'Float32Array, Float64Array, Int32Array, Int8Array or Uint8Array (or convert with e.g. ' +
    'Float32Array.from(data))');
}

/**
 * A new tensor of zeros.
 *
 * @param shape - dimensions, e.g. `[2, 3]`, or a length.
 * @throws NodecclRangeError for an invalid shape or one too large to allocate.
 */
export function zeros<D extends DType = 'float32'>(
  shape: number | readonly number[], options?: ZerosOptions<D>,
): Tensor<D> {
  const fn = 'zeros()';
  const opts = checkOptions(fn, options, ['dtype']);
  const dtype = (opts.dtype === undefined ? 'float32' : checkDType(fn, opts.dtype)) as D;
  const dims = checkShape(fn, shape);
  const Ctor = arrayConstructor(dtype);
  let data: DTypeArrayMap[D];
  try {
    data = new Ctor(shapeSize(dims));
  } catch (e) {
    throw new NodecclRangeError(`${fn}: cannot allocate ${shapeSize(dims)} ${dtype} elements ` +
      `for shape ${formatShape(dims)} (${e instanceof Error ? e.message : String(e)}); use a ` +
      'smaller shape');
  }
  return new Tensor(data, dtype, dims);
}

// ---- float16 / bfloat16 conversion ----------------------------------------------------------

type Rounder = 'floatToHalf' | 'floatToBFloat16';
type Widener = 'halfToFloat' | 'bfloat16ToFloat';

// Runs one native conversion, turning its errors into nodeccl's classes.
function callNative(name: Rounder | Widener, src: ArrayBufferView, dst: ArrayBufferView): void {
  const addon = native();
  try {
    (addon[name] as (s: ArrayBufferView, d: ArrayBufferView) => void)(src, dst);
  } catch (e) {
    throw fromNative(e);
  }
}

function halves(name: Rounder, src: Float32Array | Float64Array, out?: Uint16Array):
  Uint16Array {
  const dst = out ?? new Uint16Array(src.length);
  if (src.length > 0) callNative(name, src, dst);
  return dst;
}

function checkOut(fnName: string, out: unknown, want: string, length: number): void {
  if (out === undefined) return;
  const name = typedArrayName(out);
  if (name !== want) {
    throw new NodecclTypeError(`${fnName}: out must be a ${want}, got ` +
      `${name ?? describeValue(out)}; pass new ${want}(${length}) or omit it`);
  }
  checkBuffer(fnName, 'out', out as ArrayBufferView);
  if ((out as ArrayLike<number>).length !== length) {
    throw new NodecclRangeError(`${fnName}: out has ${(out as ArrayLike<number>).length} ` +
      `elements but the input has ${length}; pass an out array of the same length`);
  }
}

function round(
  fnName: string, name: Rounder, values: unknown, out: Uint16Array | undefined,
): Uint16Array {
  const tag = typedArrayName(values);
  let src: Float32Array | Float64Array;
  if (tag === 'Float32Array' || tag === 'Float64Array') {
    src = values as Float32Array | Float64Array;
    checkBuffer(fnName, 'values', src);
  } else if (Array.isArray(values)) {
    checkNumbers(fnName, values, 'float64');
    src = Float64Array.from(values as number[]);
  } else {
    throw new NodecclTypeError(`${fnName}: values must be a Float32Array, a Float64Array or ` +
      `an array of numbers, got ${tag ?? describeValue(values)}` +
      (tag !== undefined ? '; convert with Float32Array.from(values)' : ''));
  }
  checkOut(fnName, out, 'Uint16Array', src.length);
  return halves(name, src, out);
}

function widen(
  fnName: string, name: Widener, bits: unknown, out: Float32Array | undefined,
): Float32Array {
  const tag = typedArrayName(bits);
  if (tag !== 'Uint16Array') {
    throw new NodecclTypeError(`${fnName}: bits must be a Uint16Array of 16-bit float bits, ` +
      `got ${tag ?? describeValue(bits)}`);
  }
  const src = bits as Uint16Array;
  checkBuffer(fnName, 'bits', src);
  checkOut(fnName, out, 'Float32Array', src.length);
  const dst = out ?? new Float32Array(src.length);
  if (src.length > 0) callNative(name, src, dst);
  return dst;
}

/**
 * Rounds numbers to IEEE 754 binary16 (round to nearest even; overflow gives ±Infinity,
 * values below half the smallest subnormal give ±0, NaN stays NaN) and returns their bits.
 * Numbers from a Float64Array or number array are rounded once, directly from double.
 *
 * @param out - optional destination of the same length; must not overlap `values`.
 * @example `toFloat16([1, 65504, 1e-8])` gives `Uint16Array [0x3c00, 0x7bff, 0x0000]`.
 */
export function toFloat16(
  values: Float32Array | Float64Array | readonly number[], out?: Uint16Array,
): Uint16Array {
  return round('toFloat16()', 'floatToHalf', values, out);
}

/** Widens binary16 bits to float32 (exact: every half is a float32). */
export function fromFloat16(bits: Uint16Array, out?: Float32Array): Float32Array {
  return widen('fromFloat16()', 'halfToFloat', bits, out);
}

/**
 * Rounds numbers to bfloat16 (the top 16 bits of a float32; round to nearest even, NaN kept
 * NaN) and returns their bits.
 *
 * @param out - optional destination of the same length; must not overlap `values`.
 */
export function toBFloat16(
  values: Float32Array | Float64Array | readonly number[], out?: Uint16Array,
): Uint16Array {
  return round('toBFloat16()', 'floatToBFloat16', values, out);
}

/** Widens bfloat16 bits to float32 (exact). */
export function fromBFloat16(bits: Uint16Array, out?: Float32Array): Float32Array {
  return widen('fromBFloat16()', 'bfloat16ToFloat', bits, out);
}
