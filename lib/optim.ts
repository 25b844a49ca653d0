// SPDX-License-Identifier: Apache-2.0
// Fused optimizers with torch.optim's update rules and defaults: SGD, RMSprop, Adam and AdamW.
// Each step() is one synchronous native call over the whole parameter list (cpp/optim); state
// lives in Float32Arrays owned here, so stateDict() and loadStateDict() are plain copies.
import { fromNative, NodecclRangeError, NodecclTypeError } from './errors';
import { native, type NativeOptim } from './native';
import { checkOptions, describeValue, suggestionSuffix } from './options';

// ---- public types ---------------------------------------------------------------------------

/**
 * A float32 tensor as the optimizers accept it: lib/tensor.ts's `Tensor`, or any object whose
 * `data` is a Float32Array and whose `dtype` is `'float32'`. It is updated through `data`.
 */
export interface Float32TensorLike {
  readonly data: Float32Array;
  readonly dtype: 'float32';
}

/** A parameter or a gradient: a Float32Array or a float32 tensor. */
export type Float32Like = Float32Array | Float32TensorLike;

/** Options of {@link SGD}; defaults are torch.optim.SGD's. */
export interface SGDOptions {
  /** Learning rate, >= 0. Default 1e-3. */
  lr?: number;
  /** Momentum factor, >= 0. Default 0 (plain SGD). */
  momentum?: number;
  /** Dampening of the momentum's gradient term. Default 0. */
  dampening?: number;
  /** L2 penalty added to the gradient, >= 0. Default 0. */
  weightDecay?: number;
  /** Nesterov momentum; needs momentum > 0 and dampening 0. Default false. */
  nesterov?: boolean;
}

/** Options of {@link RMSprop}; defaults are torch.optim.RMSprop's. */
export interface RMSpropOptions {
  /** Learning rate, >= 0. Default 1e-2. */
  lr?: number;
  /** Smoothing constant of the running mean of squared gradients, >= 0. Default 0.99. */
  alpha?: number;
  /** Added to the root mean square, >= 0. Default 1e-8. */
  eps?: number;
  /** L2 penalty added to the gradient, >= 0. Default 0. */
  weightDecay?: number;
  /** Momentum factor, >= 0. Default 0. */
  momentum?: number;
  /** Normalize by an estimate of the gradient's variance. Default false. */
  centered?: boolean;
}

/** Options of {@link Adam} and {@link AdamW}; defaults are torch.optim's. */
export interface AdamOptions {
  /** Learning rate, >= 0. Default 1e-3. */
  lr?: number;
  /** Decay rates of the first and second moment estimates, each in [0, 1). Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Added to the denominator, >= 0. Default 1e-8. */
  eps?: number;
  /**
   * Weight decay, >= 0. Adam adds `weightDecay * p` to the gradient (L2); AdamW multiplies the
   * parameter by `1 - lr * weightDecay` before the update (decoupled). Default 0 for Adam,
   * 1e-2 for AdamW.
   */
  weightDecay?: number;
  /** AMSGrad: divide by the running maximum of the second moment. Default false. */
  amsgrad?: boolean;
  /**
   * Divide the moments by 1 - beta^t, with t each parameter's own step count. Default true, as
   * torch always does; false gives the uncorrected variant (apex's `bias_correction=False`).
   */
  biasCorrection?: boolean;
}

/** Options of {@link AdamW}: those of Adam, with weightDecay defaulting to 1e-2. */
export type AdamWOptions = AdamOptions;

/** The name of an optimizer class, as recorded in its state dict. */
export type OptimizerName = 'SGD' | 'RMSprop' | 'Adam' | 'AdamW';

/**
 * The state of one parameter: its own step count and the buffers its optimizer's options use
 * (SGD: momentumBuffer; RMSprop: squareAvg, momentumBuffer, gradAvg; Adam and AdamW: expAvg,
 * expAvgSq, maxExpAvgSq).
 */
export interface ParamState {
  step: number;
  momentumBuffer?: Float32Array;
  squareAvg?: Float32Array;
  gradAvg?: Float32Array;
  expAvg?: Float32Array;
  expAvgSq?: Float32Array;
  maxExpAvgSq?: Float32Array;
}

/**
 * A checkpoint of an optimizer, from {@link Optimizer.stateDict}: plain objects, numbers and
 * Float32Arrays. structuredClone, worker postMessage and v8.serialize keep every bit. JSON
 * needs the typed arrays turned into arrays (`Array.from`); loadStateDict accepts number arrays
 * back, exact except for -0 and NaN, which JSON cannot carry.
 */
export interface OptimizerStateDict {
  /** Layout marker, `'nodeccl.optim/1'`. */
  format: typeof STATE_FORMAT;
  /** The class that saved it; only that class loads it. */
  optimizer: OptimizerName;
  /** Every hyperparameter, including the current lr. */
  options: Required<SGDOptions> | Required<RMSpropOptions> | Required<AdamOptions>;
  /** One entry per parameter, in the order the optimizer was given them. */
  state: ParamState[];
}

/** The `format` of every state dict this version writes and reads. */
export const STATE_FORMAT = 'nodeccl.optim/1' as const;

// ---- option tables ------------------------------------------------------------------------

type OptionValue = number | boolean | readonly [number, number];
type Resolved = Record<string, OptionValue>;
type OptionKind = 'number' | 'boolean' | 'betas';
type BufferName = Exclude<keyof ParamState, 'step'>;
type Buffers = Partial<Record<BufferName, Float32Array[]>>;

// How one optimizer differs from another; the Optimizer class does the rest.
interface Algorithm {
  name: OptimizerName;
  defaults: Resolved;
  kinds: Record<string, OptionKind>;
  /** Every state buffer the algorithm can have, and those that `o` needs. */
  allBuffers: readonly BufferName[];
  buffers(o: Resolved): BufferName[];
  validate(n: NativeOptim, o: Resolved): void;
  step(n: NativeOptim, o: Resolved, p: Float32Array[], g: Float32Array[], b: Buffers,
       steps: Float64Array): void;
}

const num = (o: Resolved, k: string): number => o[k] as number;
const bool = (o: Resolved, k: string): boolean => o[k] as boolean;

const sgdNative = (o: Resolved) => ({
  lr: num(o, 'lr'), momentum: num(o, 'momentum'), dampening: num(o, 'dampening'),
  weightDecay: num(o, 'weightDecay'), nesterov: bool(o, 'nesterov'),
});

const SGD_ALGORITHM: Algorithm = {
  name: 'SGD',
  defaults: { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false },
  kinds: { lr: 'number', momentum: 'number', dampening: 'number', weightDecay: 'number',
           nesterov: 'boolean' },
  allBuffers: ['momentumBuffer'],
  buffers: (o) => (num(o, 'momentum') !== 0 ? ['momentumBuffer'] : []),
  validate: (n, o) => n.sgdValidate(sgdNative(o)),
  step: (n, o, p, g, b, steps) => n.sgdStep(sgdNative(o), p, g, b.momentumBuffer ?? null, steps),
};

const rmspropNative = (o: Resolved) => ({
  lr: num(o, 'lr'), alpha: num(o, 'alpha'), eps: num(o, 'eps'),
  weightDecay: num(o, 'weightDecay'), momentum: num(o, 'momentum'), centered: bool(o, 'centered'),
});

const RMSPROP_ALGORITHM: Algorithm = {
  name: 'RMSprop',
  defaults: { lr: 1e-2, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0, centered: false },
  kinds: { lr: 'number', alpha: 'number', eps: 'number', weightDecay: 'number',
           momentum: 'number', centered: 'boolean' },
  allBuffers: ['squareAvg', 'momentumBuffer', 'gradAvg'],
  buffers: (o) => {
    const names: BufferName[] = ['squareAvg'];
    if (num(o, 'momentum') !== 0) names.push('momentumBuffer');
    if (bool(o, 'centered')) names.push('gradAvg');
    return names;
  },
  validate: (n, o) => n.rmspropValidate(rmspropNative(o)),
  step: (n, o, p, g, b, steps) => n.rmspropStep(rmspropNative(o), p, g, b.squareAvg ?? [],
    b.momentumBuffer ?? null, b.gradAvg ?? null, steps),
};

function adamAlgorithm(name: 'Adam' | 'AdamW'): Algorithm {
  const decoupled = name === 'AdamW';
  const toNative = (o: Resolved) => {
    const betas = o.betas as readonly [number, number];
    return {
      lr: num(o, 'lr'), beta1: betas[0], beta2: betas[1], eps: num(o, 'eps'),
      weightDecay: num(o, 'weightDecay'), amsgrad: bool(o, 'amsgrad'), decoupled,
      biasCorrection: bool(o, 'biasCorrection'),
    };
  };
  return {
    name,
    defaults: { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: decoupled ? 1e-2 : 0,
                amsgrad: false, biasCorrection: true },
    kinds: { lr: 'number', betas: 'betas', eps: 'number', weightDecay: 'number',
             amsgrad: 'boolean', biasCorrection: 'boolean' },
    allBuffers: ['expAvg', 'expAvgSq', 'maxExpAvgSq'],
    buffers: (o) => (bool(o, 'amsgrad') ? ['expAvg', 'expAvgSq', 'maxExpAvgSq']
      : ['expAvg', 'expAvgSq']),
    validate: (n, o) => n.adamValidate(toNative(o)),
    step: (n, o, p, g, b, steps) => n.adamStep(toNative(o), p, g, b.expAvg ?? [],
      b.expAvgSq ?? [], b.maxExpAvgSq ?? null, steps),
  };
}
const ALGORITHMS: Record<OptimizerName, Algorithm> = {
  SGD: SGD_ALGORITHM, RMSprop: RMSPROP_ALGORITHM,
  Adam: adamAlgorithm('Adam'), AdamW: adamAlgorithm('AdamW'),
};

// ---- argument checks -------------------------------------------------------------------------

// A typed array's class name ("Float64Array"); undefined for a DataView.
function tagOf(v: ArrayBufferView): string | undefined {
  return (v as { [Symbol.toStringTag]?: string })[Symbol.toStringTag];
}

// instanceof first (fast); then the tag, so arrays from another realm (vm, worker) pass too.
function isFloat32Array(v: unknown): v is Float32Array {
  return v instanceof Float32Array || (ArrayBuffer.isView(v) && tagOf(v) === 'Float32Array');
}

// The Float32Array of a parameter or gradient named `what` ("params[2]").
// LIMITATION: float32 only. The native kernels are float32 loops; float64, float16 or bfloat16
// parameters would need their own kernels and rounding rules, so they are refused, never
// converted behind the caller's back.
function float32Of(who: string, what: string, v: unknown): Float32Array {
  if (isFloat32Array(v)) return v;
  if (ArrayBuffer.isView(v)) {
    throw new NodecclTypeError(`${who}: ${what} is a ${describeValue(v)}; only float32 is ` +
      'supported (pass a Float32Array or a float32 Tensor)');
  }
  if (typeof v === 'object' && v !== null && 'dtype' in v && 'data' in v) {
    const t = v as { dtype: unknown; data: unknown };
    if (t.dtype !== 'float32') {
      throw new NodecclTypeError(`${who}: ${what} is a tensor of dtype ` +
        `${describeValue(t.dtype)}; only float32 is supported`);
    }
    if (!isFloat32Array(t.data)) {
      throw new NodecclTypeError(`${who}: ${what}.data is ${describeValue(t.data)}; a float32 ` +
        'tensor must hold a Float32Array');
    }
    return t.data;
  }
  throw new NodecclTypeError(`${who}: ${what} must be a Float32Array or a float32 Tensor, ` +
    `got ${describeValue(v)}`);
}

// Options from the caller (or a state dict), type-checked and completed with the defaults.
// Ranges are checked by the native validate call, the one place that knows them.
function resolveOptions(who: string, alg: Algorithm, given: unknown, what: string): Resolved {
  if (given !== undefined && (typeof given !== 'object' || given === null ||
                              Array.isArray(given))) {
    throw new NodecclTypeError(`${who}: ${what} must be an object such as { lr: 0.01 }, ` +
      `got ${describeValue(given)}`);
  }
  const checked = checkOptions(who, given as Record<string, unknown> | undefined,
    Object.keys(alg.kinds));
  const out: Resolved = { ...alg.defaults };
  for (const [key, value] of Object.entries(checked)) {
    if (value === undefined) continue;
    out[key] = checkOptionType(who, `${what}.${key}`, alg.kinds[key], value);
  }
  return out;
}

function checkOptionType(who: string, what: string, kind: OptionKind, v: unknown): OptionValue {
  if (kind === 'betas') {
    if (!Array.isArray(v) || v.length !== 2 || v.some((x) => typeof x !== 'number')) {
      throw new NodecclTypeError(`${who}: ${what} must be two numbers [beta1, beta2], ` +
        `got ${describeValue(v)}`);
    }
    return [v[0], v[1]] as const;
  }
  if (typeof v !== kind) {
    throw new NodecclTypeError(`${who}: ${what} must be a ${kind}, got ${describeValue(v)}`);
  }
  return v as number | boolean;
}

// Runs a native call, turning its errors into NodecclTypeError / NodecclRangeError / ...
function callNative<T>(fn: (n: NativeOptim) => T): T {
  const n = native();
  try {
    return fn(n);
  } catch (e) {
    throw fromNative(e);
  }
}

// A state buffer from a dict: a Float32Array or (after JSON) an array of numbers, copied.
function bufferFrom(who: string, what: string, v: unknown, size: number): Float32Array {
  let out: Float32Array;
  if (isFloat32Array(v)) {
    out = v.slice();
  } else if (Array.isArray(v) && v.every((x) => typeof x === 'number')) {
    out = Float32Array.from(v as number[]);
  } else {
    throw new NodecclTypeError(`${who}: ${what} must be a Float32Array (or an array of numbers), ` +
      `got ${describeValue(v)}`);
  }
  if (out.length !== size) {
    throw new NodecclRangeError(`${who}: ${what} has ${out.length} elements but the parameter ` +
      `has ${size}; was the dict saved for other parameters?`);
  }
  return out;
}

// ---- the optimizers ------------------------------------------------------------------------

/**
 * The common base of the fused optimizers. Parameters are updated in place; every step() is one
 * synchronous native call over all of them, and each parameter keeps its own step count (a
 * parameter skipped with a null gradient does not advance, as in torch).
 */
export abstract class Optimizer {
  /** Which optimizer this is (also recorded in its state dict). */
  readonly name: OptimizerName;
  private readonly alg: Algorithm;
  private readonly params: readonly Float32Like[];
  private readonly sizes: readonly number[];
  private options: Resolved;
  private steps: Float64Array;
  private buffers: Buffers = {};

  /** For the subclasses: `name` picks the algorithm; arguments are checked here. */
  protected constructor(name: OptimizerName, params: unknown, options: unknown) {
    const alg = ALGORITHMS[name];
    this.alg = alg;
    this.name = name;
    const who = `new ${name}()`;
    this.params = checkParams(who, params);
    this.sizes = this.params.map((p, i) => float32Of(who, `params[${i}]`, p).length);
    this.options = resolveOptions(who, alg, options, 'options');
    callNative((n) => alg.validate(n, this.options));
    this.steps = new Float64Array(this.params.length);
    for (const name of alg.buffers(this.options)) {
      this.buffers[name] = this.sizes.map((s) => new Float32Array(s));
    }
  }

  /** The learning rate; set it between steps to follow a schedule (RangeError if < 0). */
  get lr(): number {
    return this.options.lr as number;
  }

  set lr(value: number) {
    const lr = checkOptionType(`${this.name}.lr`, 'value', 'number', value);
    const next = { ...this.options, lr };
    callNative((n) => this.alg.validate(n, next));
    this.options = next;
  }

  /**
   * Updates every parameter from its gradient, matched by position. `grads[i]` must have the
   * length of params[i]; a null or undefined entry skips that parameter (its state and step
   * count stay as they are). Throws NodecclTypeError or NodecclRangeError, naming the entry,
   * before anything is written.
   */
  step(grads: readonly (Float32Like | null | undefined)[]): void {
    const who = `${this.name}.step()`;
    const n = this.params.length;
    if (!Array.isArray(grads)) {
      throw new NodecclTypeError(`${who}: grads must be an array with one gradient per ` +
        `parameter (null to skip one), got ${describeValue(grads)}`);
    }
    if (grads.length !== n) {
      throw new NodecclRangeError(`${who}: grads has ${grads.length} entries but the ` +
        `optimizer has ${n} parameters; pass one per parameter, in order (null to skip one)`);
    }

    // Resolve and check every pair first.
    const p: Float32Array[] = new Array(n);
    const g: (Float32Array | null)[] = new Array(n);
    let skipped = 0;
    for (let i = 0; i < n; i++) {
      p[i] = this.paramData(who, i);
      const gi = grads[i];
      if (gi === null || gi === undefined) {
        g[i] = null;
        skipped++;
        continue;
      }
      g[i] = float32Of(who, `grads[${i}]`, gi);
      if (g[i]!.length !== this.sizes[i]) {
        throw new NodecclRangeError(`${who}: grads[${i}] has ${g[i]!.length} elements but ` +
          `params[${i}] has ${this.sizes[i]}`);
      }
    }
    if (skipped === 0) {
      callNative((nat) => this.alg.step(nat, this.options, p, g as Float32Array[],
        this.buffers, this.steps));
    } else if (skipped < n) {
      this.stepSubset(p, g);
    }
  }

  /**
   * A copy of the optimizer's hyperparameters and per-parameter state, to save beside the
   * parameters. Loading it into a fresh optimizer over the same parameter values (see
   * loadStateDict) continues bit for bit as if there had been no interruption.
   */
  stateDict(): OptimizerStateDict {
    const state: ParamState[] = [];
    for (let i = 0; i < this.params.length; i++) {
      const entry: ParamState = { step: this.steps[i] };
      for (const name of this.alg.buffers(this.options)) {
        entry[name] = this.buffers[name]![i].slice();
      }
      state.push(entry);
    }
    const options = { ...this.options };
    if (options.betas) {
      const [b1, b2] = options.betas as readonly [number, number];
      options.betas = [b1, b2];
    }
    return { format: STATE_FORMAT, optimizer: this.name,
             options: options as unknown as OptimizerStateDict['options'], state };
  }

  /**
   * Replaces hyperparameters and state with those of `dict` (from stateDict() of the same kind
   * of optimizer over parameters of the same sizes; buffers are copied). Everything is checked
   * first: on any error the optimizer is unchanged.
   */
  loadStateDict(dict: OptimizerStateDict): void {
    const who = `${this.name}.loadStateDict()`;
    const d = checkDict(who, this.name, this.params.length, dict);
    for (const key of Object.keys(this.alg.kinds)) {
      if (!(key in (d.options as object))) {
        throw new NodecclTypeError(`${who}: dict.options.${key} is missing; a dict from ` +
          'stateDict() records every option');
      }
    }
    const options = resolveOptions(who, this.alg, d.options, 'dict.options');
    callNative((n) => this.alg.validate(n, options));

    // Step counts and buffers, into fresh arrays.
    const names = this.alg.buffers(options);
    const steps = new Float64Array(this.params.length);
    const buffers: Buffers = {};
    for (const name of names) buffers[name] = [];
    for (let i = 0; i < this.params.length; i++) {
      const what = `dict.state[${i}]`;
      const entry = d.state[i] as unknown;
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new NodecclTypeError(`${who}: ${what} must be an object, got ` +
          `${describeValue(entry)}`);
      }
      const e = entry as Record<string, unknown>;
      for (const key of Object.keys(e)) {
        const known = ['step', ...this.alg.allBuffers];
        if (!known.includes(key)) {
          throw new NodecclTypeError(`${who}: unknown key '${key}' in ${what}` +
            `${suggestionSuffix(key, known) || '.'} Allowed keys: ${known.join(', ')}.`);
        }
      }
      if (!Number.isSafeInteger(e.step) || (e.step as number) < 0) {
        throw new NodecclRangeError(`${who}: ${what}.step must be a whole number >= 0, got ` +
          `${String(e.step)}`);
      }
      steps[i] = e.step as number;
      for (const name of names) {
        buffers[name]!.push(bufferFrom(who, `${what}.${name}`, e[name], this.sizes[i]));
      }
    }
    this.options = options;
    this.steps = steps;
    this.buffers = buffers;
  }

  // The current Float32Array of parameter i (a Tensor's data is read at each step).
  private paramData(who: string, i: number): Float32Array {
    const data = float32Of(who, `params[${i}]`, this.params[i]);
    if (data.length !== this.sizes[i]) {
      throw new NodecclRangeError(`${who}: params[${i}] now has ${data.length} elements but had ` +
        `${this.sizes[i]} when the optimizer was created`);
    }
    return data;
  }

  // A step over the parameters whose gradient is not null; their step counts are copied out
  // and back so the others keep theirs.
  private stepSubset(p: Float32Array[], g: (Float32Array | null)[]): void {
    const idx: number[] = [];
    for (let i = 0; i < g.length; i++) if (g[i] !== null) idx.push(i);
    const buffers: Buffers = {};
    for (const name of this.alg.buffers(this.options)) {
      buffers[name] = idx.map((i) => this.buffers[name]![i]);
    }
    const steps = Float64Array.from(idx, (i) => this.steps[i]);
    callNative((n) => this.alg.step(n, this.options, idx.map((i) => p[i]),
      idx.map((i) => g[i]!), buffers, steps));
    idx.forEach((i, k) => { this.steps[i] = steps[k]; });
  }
}

// The parameter list: a non-empty array of float32 arrays or tensors, each given once.
function checkParams(who: string, params: unknown): Float32Like[] {
  if (!Array.isArray(params)) {
    throw new NodecclTypeError(`${who}: params must be an array of Float32Array or float32 ` +
      `Tensor, got ${describeValue(params)}`);
  }
  if (params.length === 0) {
    throw new NodecclRangeError(`${who}: params is empty; pass at least one parameter`);
  }
  const seen = new Map<Float32Array, number>();
  params.forEach((p, i) => {
    const data = float32Of(who, `params[${i}]`, p);
    const first = seen.get(data);
    if (first !== undefined) {
      throw new NodecclRangeError(`${who}: params[${i}] is the same parameter as ` +
        `params[${first}]; pass each parameter once`);
    }
    seen.set(data, i);
  });
  return [...params] as Float32Like[];
}

// The outer shape of a state dict: its marker, its kind and one state entry per parameter.
function checkDict(who: string, name: OptimizerName, count: number,
                   dict: unknown): { options: unknown; state: unknown[] } {
  if (typeof dict !== 'object' || dict === null || Array.isArray(dict)) {
    throw new NodecclTypeError(`${who}: dict must be an object from stateDict(), got ` +
      `${describeValue(dict)}`);
  }
  const d = dict as Record<string, unknown>;
  if (d.format !== STATE_FORMAT) {
    throw new NodecclRangeError(`${who}: dict.format is ${String(d.format)}, expected ` +
      `'${STATE_FORMAT}'; pass an object returned by stateDict()`);
  }
  if (d.optimizer !== name) {
    throw new NodecclRangeError(`${who}: dict was saved by ${describeValue(d.optimizer)}, ` +
      `not ${name}; load it into an optimizer of that kind`);
  }
  if (typeof d.options !== 'object' || d.options === null) {
    throw new NodecclTypeError(`${who}: dict.options must be an object, got ` +
      `${describeValue(d.options)}`);
  }
  if (!Array.isArray(d.state)) {
    throw new NodecclTypeError(`${who}: dict.state must be an array, got ` +
      `${describeValue(d.state)}`);
  }
  if (d.state.length !== count) {
    throw new NodecclRangeError(`${who}: dict.state has ${d.state.length} entries but the ` +
      `optimizer has ${count} parameters; it was saved for a different parameter list`);
  }
  return { options: d.options, state: d.state };
}

/**
 * Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2
 * weight decay, as torch.optim.SGD.
 * @example
 * const opt = new SGD([w, b], { lr: 0.1, momentum: 0.9 });
 * opt.step([gw, gb]);
 */
export class SGD extends Optimizer {
  constructor(params: readonly Float32Like[], options: SGDOptions = {}) {
    super('SGD', params, options);
  }
}

/** RMSprop, optionally centered and with momentum, as torch.optim.RMSprop. */
export class RMSprop extends Optimizer {
  constructor(params: readonly Float32Like[], options: RMSpropOptions = {}) {
    super('RMSprop', params, options);
  }
}

/** Adam with L2 weight decay (added to the gradient) and optional AMSGrad, as torch.optim.Adam. */
export class Adam extends Optimizer {
  constructor(params: readonly Float32Like[], options: AdamOptions = {}) {
    super('Adam', params, options);
  }
}

/** Adam with decoupled weight decay (`p *= 1 - lr * weightDecay`), as torch.optim.AdamW. */
export class AdamW extends Optimizer {
  constructor(params: readonly Float32Like[], options: AdamWOptions = {}) {
    super('AdamW', params, options);
  }
}
