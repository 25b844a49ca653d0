// SPDX-License-Identifier: Apache-2.0
// Element types and reduction operators: their names, the native numbering of
// cpp/common/dtype.h (a test pins the two tables together), element sizes, and the TypedArray
// that holds each dtype.
import { NodecclTypeError } from './errors';
import { describeValue, suggestionSuffix } from './options';

/**
 * An element type. `float16` (IEEE 754 binary16) and `bfloat16` are stored as raw bits in a
 * Uint16Array; `toFloat16()` and `toBFloat16()` (lib/tensor.ts) produce those bits.
 */
export type DType = 'float32' | 'float64' | 'int32' | 'int8' | 'uint8' | 'float16' | 'bfloat16';

/** Every dtype, in native numbering order. */
export const DTYPES: readonly DType[] = Object.freeze([
  'float32', 'float64', 'int32', 'int8', 'uint8', 'float16', 'bfloat16',
] as const);

/** The native code of each dtype (`nodeccl::DataType` in cpp/common/dtype.h). */
export const DTYPE_CODES: Readonly<Record<DType, number>> = Object.freeze({
  float32: 0, float64: 1, int32: 2, int8: 3, uint8: 4, float16: 5, bfloat16: 6,
});

/** A reduction: `avg` is the sum divided by the world size (integer division for integers). */
export type ReduceOpName = 'sum' | 'prod' | 'min' | 'max' | 'avg';

/** Every reduce op, in native numbering order. */
export const REDUCE_OPS: readonly ReduceOpName[] = Object.freeze([
  'sum', 'prod', 'min', 'max', 'avg',
] as const);

/** The native code of each reduce op (`nodeccl::ReduceOp` in cpp/common/dtype.h). */
export const REDUCE_OP_CODES: Readonly<Record<ReduceOpName, number>> = Object.freeze({
  sum: 0, prod: 1, min: 2, max: 3, avg: 4,
});

/** Bytes per element of each dtype. */
export const DTYPE_SIZES: Readonly<Record<DType, number>> = Object.freeze({
  float32: 4, float64: 8, int32: 4, int8: 1, uint8: 1, float16: 2, bfloat16: 2,
});

/** The TypedArray type that holds each dtype. */
export interface DTypeArrayMap {
  float32: Float32Array;
  float64: Float64Array;
  int32: Int32Array;
  int8: Int8Array;
  uint8: Uint8Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
}

/** Any TypedArray that holds a nodeccl dtype. */
export type DTypeArray = DTypeArrayMap[DType];

/** The constructor of the TypedArray that holds dtype `D`. */
export interface DTypeArrayConstructor<D extends DType = DType> {
  new (length: number): DTypeArrayMap[D];
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): DTypeArrayMap[D];
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
}

const CONSTRUCTORS: { readonly [D in DType]: DTypeArrayConstructor<D> } = Object.freeze({
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
});

// The TypedArray name for which inferDType has one answer.
const DTYPE_OF_ARRAY: Readonly<Record<string, DType>> = Object.freeze({
  Float32Array: 'float32',
  Float64Array: 'float64',
  Int32Array: 'int32',
  Int8Array: 'int8',
  Uint8Array: 'uint8',
});

// Names people write for a dtype or an op, used only to suggest the right spelling.
const DTYPE_ALIASES: Readonly<Record<string, DType>> = Object.freeze({
  float: 'float32', fp32: 'float32', f32: 'float32', single: 'float32',
  double: 'float64', fp64: 'float64', f64: 'float64',
  int: 'int32', i32: 'int32', i8: 'int8', u8: 'uint8', byte: 'uint8',
  half: 'float16', fp16: 'float16', f16: 'float16', bf16: 'bfloat16',
});
const OP_ALIASES: Readonly<Record<string, ReduceOpName>> = Object.freeze({
  add: 'sum', plus: 'sum', product: 'prod', mul: 'prod', multiply: 'prod',
  minimum: 'min', maximum: 'max', mean: 'avg', average: 'avg',
});

// %TypedArray%.prototype[Symbol.toStringTag]: the array's class name, even for arrays made in
// another realm (a vm context), and undefined for anything that is not a TypedArray.
const typedArrayTag = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Uint8Array.prototype) as object, Symbol.toStringTag)?.get;

/**
 * The class name of a TypedArray (`'Float32Array'`; a Node Buffer reports `'Uint8Array'`), or
 * undefined when `value` is not a TypedArray.
 */
export function typedArrayName(value: unknown): string | undefined {
  if (!ArrayBuffer.isView(value) || typedArrayTag === undefined) return undefined;
  return typedArrayTag.call(value) as string | undefined;
}

/** True when `value` is one of the dtype names. */
export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_CODES, value);
}

/** True when `value` is one of the reduce op names. */
export function isReduceOp(value: unknown): value is ReduceOpName {
  return typeof value === 'string' &&
    Object.prototype.hasOwnProperty.call(REDUCE_OP_CODES, value);
}

/** Bytes per element of `dtype`. */
export function dtypeSize(dtype: DType): number {
  const size = (DTYPE_SIZES as Record<string, number | undefined>)[dtype];
  if (size === undefined) {
    throw new NodecclTypeError(`dtypeSize: unknown dtype ${JSON.stringify(dtype)}; use one of ` +
      `${Object.keys(DTYPE_SIZES).join(', ')}`);
  }
  return size;
}

/** True for the 16-bit float dtypes, which are stored as raw bits in a Uint16Array. */
export function isHalfDType(dtype: DType): dtype is 'float16' | 'bfloat16' {
  return dtype === 'float16' || dtype === 'bfloat16';
}

/** True for `int32`, `int8` and `uint8`. */
export function isIntegerDType(dtype: DType): dtype is 'int32' | 'int8' | 'uint8' {
  return dtype === 'int32' || dtype === 'int8' || dtype === 'uint8';
}

/** The constructor of the TypedArray that holds `dtype` (Uint16Array for the 16-bit floats). */
export function arrayConstructor<D extends DType>(dtype: D): DTypeArrayConstructor<D> {
  return CONSTRUCTORS[dtype];
}

/** The class name of the TypedArray that holds `dtype`, e.g. `'Float32Array'`. */
export function arrayNameOf(dtype: DType): string {
  return CONSTRUCTORS[dtype].name;
}

function suggestFrom<T extends string>(
  value: string, names: readonly T[], aliases: Readonly<Record<string, T>>,
): string {
  const alias = aliases[value.toLowerCase()];
  if (alias !== undefined) return `; did you mean '${alias}'?`;
  return suggestionSuffix(value, names);
}

/**
 * Returns `value` when it names a dtype.
 *
 * @param fnName - the caller, for the message (`'tensor()'`).
 * @param what - how the argument is called in the message (default `dtype`).
 * @throws NodecclTypeError naming the value, the closest dtype and the supported list.
 */
export function checkDType(fnName: string, value: unknown, what = 'dtype'): DType {
  if (isDType(value)) return value;
  const hint = typeof value === 'string' ? suggestFrom(value, DTYPES, DTYPE_ALIASES) : '';
  throw new NodecclTypeError(
    `${fnName}: ${what} ${describeValue(value)} is not a nodeccl dtype${hint || '.'} ` +
    `Supported: ${DTYPES.join(', ')}.`);
}

/**
 * Returns `value` when it names a reduce op.
 *
 * @throws NodecclTypeError naming the value, the closest op and the supported list.
 */
export function checkReduceOp(fnName: string, value: unknown, what = 'op'): ReduceOpName {
  if (isReduceOp(value)) return value;
  const hint = typeof value === 'string' ? suggestFrom(value, REDUCE_OPS, OP_ALIASES) : '';
  throw new NodecclTypeError(
    `${fnName}: ${what} ${describeValue(value)} is not a reduce op${hint || '.'} ` +
    `Supported: ${REDUCE_OPS.join(', ')}.`);
}

/**
 * The dtype a TypedArray unambiguously holds, or undefined (a Uint16Array, an unsupported
 * TypedArray, or not a TypedArray at all). The non-throwing form of {@link inferDType}.
 */
export function dtypeOfArray(value: unknown): DType | undefined {
  const name = typedArrayName(value);
  return name === undefined ? undefined : DTYPE_OF_ARRAY[name];
}

function supportedArrays(): string {
  return 'Float32Array, Float64Array, Int32Array, Int8Array, Uint8Array, or a Uint16Array ' +
    "inside a tensor with dtype 'float16' or 'bfloat16'";
}

/**
 * The dtype of a TypedArray: Float32Array → `float32`, Float64Array → `float64`,
 * Int32Array → `int32`, Int8Array → `int8`, Uint8Array (and Buffer) → `uint8`.
 *
 * @param fnName - the caller, for the message (default `'inferDType()'`).
 * @throws NodecclTypeError for a Uint16Array (float16 or bfloat16 bits? pass a tensor with an
 *   explicit dtype), for TypedArrays with no nodeccl dtype, and for anything else.
 */
export function inferDType(array: unknown, fnName = 'inferDType()'): DType {
  const name = typedArrayName(array);
  if (name === undefined) {
    throw new NodecclTypeError(
      `${fnName}: expected a TypedArray (${supportedArrays()}), got ${describeValue(array)}`);
  }
  const dtype = DTYPE_OF_ARRAY[name];
  if (dtype !== undefined) return dtype;
  if (name === 'Uint16Array') {
    throw new NodecclTypeError(
      `${fnName}: a Uint16Array may hold float16 or bfloat16 bits, so its dtype is ambiguous; ` +
      "pass a tensor with dtype 'float16' or 'bfloat16', e.g. " +
      "tensor(bits, { dtype: 'float16' })");
  }
  const fix = name === 'Float16Array'
    ? "view its bits with new Uint16Array(a.buffer, a.byteOffset, a.length) in a tensor with " +
      "dtype 'float16'"
    : name === 'Uint8ClampedArray'
      ? 'view it with new Uint8Array(a.buffer, a.byteOffset, a.length)'
      : 'convert it, e.g. with Float32Array.from(a) or Int32Array.from(a)';
  throw new NodecclTypeError(
    `${fnName}: ${name} has no nodeccl dtype (supported: ${supportedArrays()}); ${fix}`);
}
