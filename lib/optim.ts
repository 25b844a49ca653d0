// SPDX-License-Identifier: Apache-2.0
// Fused optimizers with torch.optim's update rules and defaults: SGD, RMSprop, Adam, AdamW, plus
// Lion, LAMB and 8-bit Adam/AdamW. Each step() is one synchronous native call over the whole
// parameter list (cpp/optim, SIMD-dispatched), which can also clip by global norm, skip a step
// on NaN/Inf and split the work across threads; state lives in typed arrays owned here, so
// stateDict() and loadStateDict() are plain copies.
import { checkBuffer } from './buffers';
import { fromNative, NodecclRangeError, NodecclTypeError } from './errors';
import { native, type NativeOptim, type NativeStepControl, type StepReport } from './native';
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

/** Options of {@link Lion}; defaults from the paper (Chen et al. 2023). */
export interface LionOptions {
  /** Learning rate, >= 0. Default 1e-4 (Lion wants 3-10x less than AdamW). */
  lr?: number;
  /**
   * [beta1, beta2]: beta1 mixes m and g for the update's sign, beta2 decays m.
   * Default [0.9, 0.99].
   */
  betas?: readonly [number, number];
  /** Decoupled weight decay: p *= 1 - lr * weightDecay. Default 0. */
  weightDecay?: number;
}

/** Options of {@link LAMB} (You et al. 2020). */
export interface LAMBOptions {
  /** Learning rate, >= 0. Default 1e-3. */
  lr?: number;
  /** Decay rates of the moments. Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Added to the denominator. Default 1e-6. */
  eps?: number;
  /** Weight decay added to the update direction (before the trust ratio). Default 0. */
  weightDecay?: number;
  /** Divide the moments by 1 - beta^t. Default true. */
  biasCorrection?: boolean;
}

/**
 * What a step does besides the update, accepted in every optimizer's options. None of these is
 * a hyperparameter of the algorithm, so they are not saved in state dicts.
 */
export interface StepControlOptions {
  /**
   * Clip gradients by their global L2 norm (all parameters together), as torch's
   * clip_grad_norm_: they are multiplied by min(1, maxGradNorm / (norm + 1e-6)) inside the
   * fused update, without modifying the caller's arrays. 0 (default) turns clipping off.
   */
  maxGradNorm?: number;
  /**
   * Leave every parameter and its state untouched when any gradient holds NaN or infinity,
   * and report which (step() returns { skipped, nonFiniteParam, nonFiniteIndex }). For
   * dynamic loss scaling. Default false.
   */
  skipNonFinite?: boolean;
  /** Threads sharing the update of a large list (>= 1M elements in all). Default 1. */
  threads?: number;
  /**
   * A factor applied to every gradient inside the update, > 0: 1 / lossScale unscales
   * loss-scaled gradients without a separate pass. Clipping applies to the scaled gradients.
   * Default 1.
   */
  gradScale?: number;
}

export type { StepReport } from './native';

/** The name of an optimizer class, as recorded in its state dict. */
export type OptimizerName = 'SGD' | 'RMSprop' | 'Adam' | 'AdamW' | 'Lion' | 'LAMB';

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
  options: Required<SGDOptions> | Required<RMSpropOptions> | Required<AdamOptions> |
    Required<LionOptions> | Required<LAMBOptions>;
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
       steps: Float64Array, control: NativeStepControl): StepReport;
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
  step: (n, o, p, g, b, steps, c) => n.sgdStep(sgdNative(o), p, g, b.momentumBuffer ?? null,
    steps, c),
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
  step: (n, o, p, g, b, steps, c) => n.rmspropStep(rmspropNative(o), p, g, b.squareAvg ?? [],
    b.momentumBuffer ?? null, b.gradAvg ?? null, steps, c),
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
    step: (n, o, p, g, b, steps, c) => n.adamStep(toNative(o), p, g, b.expAvg ?? [],
      b.expAvgSq ?? [], b.maxExpAvgSq ?? null, steps, c),
  };
}

const lionNative = (o: Resolved) => {
  const betas = o.betas as readonly [number, number];
  return { lr: num(o, 'lr'), beta1: betas[0], beta2: betas[1], weightDecay: num(o, 'weightDecay') };
};

const LION_ALGORITHM: Algorithm = {
  name: 'Lion',
  defaults: { lr: 1e-4, betas: [0.9, 0.99], weightDecay: 0 },
  kinds: { lr: 'number', betas: 'betas', weightDecay: 'number' },
  allBuffers: ['expAvg'],
  buffers: () => ['expAvg'],
  validate: (n, o) => n.lionValidate(lionNative(o)),
  step: (n, o, p, g, b, steps, c) => n.lionStep(lionNative(o), p, g, b.expAvg ?? [], steps, c),
};

const lambNative = (o: Resolved) => {
  const betas = o.betas as readonly [number, number];
  return { lr: num(o, 'lr'), beta1: betas[0], beta2: betas[1], eps: num(o, 'eps'),
           weightDecay: num(o, 'weightDecay'), biasCorrection: bool(o, 'biasCorrection') };
};

const LAMB_ALGORITHM: Algorithm = {
  name: 'LAMB',
  defaults: { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-6, weightDecay: 0, biasCorrection: true },
  kinds: { lr: 'number', betas: 'betas', eps: 'number', weightDecay: 'number',
           biasCorrection: 'boolean' },
  allBuffers: ['expAvg', 'expAvgSq'],
  buffers: () => ['expAvg', 'expAvgSq'],
  validate: (n, o) => n.lambValidate(lambNative(o)),
  step: (n, o, p, g, b, steps, c) => n.lambStep(lambNative(o), p, g, b.expAvg ?? [],
    b.expAvgSq ?? [], steps, c),
};

const ALGORITHMS: Record<OptimizerName, Algorithm> = {
  SGD: SGD_ALGORITHM, RMSprop: RMSPROP_ALGORITHM,
  Adam: adamAlgorithm('Adam'), AdamW: adamAlgorithm('AdamW'),
  Lion: LION_ALGORITHM, LAMB: LAMB_ALGORITHM,
};

const CONTROL_KEYS = ['maxGradNorm', 'skipNonFinite', 'threads', 'gradScale'] as const;

// The step-control options out of `given` (type-checked; ranges are checked natively).
function splitControl(who: string, given: unknown): { control: NativeStepControl;
                                                      rest: unknown } {
  const control: NativeStepControl = { maxGradNorm: 0, skipNonFinite: false, threads: 1,
                                       gradScale: 1 };
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    return { control, rest: given };
  }
  const rest: Record<string, unknown> = { ...(given as Record<string, unknown>) };
  for (const key of CONTROL_KEYS) {
    const v = rest[key];
    delete rest[key];
    if (v === undefined) continue;
    const kind = key === 'skipNonFinite' ? 'boolean' : 'number';
    if (typeof v !== kind) {
      throw new NodecclTypeError(`${who}: options.${key} must be a ${kind}, got ` +
        `${describeValue(v)}`);
    }
    (control as unknown as Record<string, unknown>)[key] = v;
  }
  if (!(Number.isFinite(control.maxGradNorm) && control.maxGradNorm >= 0)) {
    throw new NodecclRangeError(`${who}: options.maxGradNorm must be a finite number >= 0 ` +
      `(0 turns clipping off), got ${control.maxGradNorm}`);
  }
  if (!(Number.isFinite(control.gradScale) && control.gradScale > 0)) {
    throw new NodecclRangeError(`${who}: options.gradScale must be a finite number > 0, got ` +
      `${control.gradScale}`);
  }
  if (!(Number.isInteger(control.threads) && control.threads >= 1 && control.threads <= 256)) {
    throw new NodecclRangeError(`${who}: options.threads must be a whole number in [1, 256], ` +
      `got ${control.threads}`);
  }
  return { control, rest };
}

const NO_REPORT: StepReport = { gradNorm: -1, clipScale: 1, skipped: false, nonFiniteParam: -1,
                                nonFiniteIndex: -1 };

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
  if (isFloat32Array(v)) {
    checkBuffer(who, what, v);
    return v;
  }
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
    checkBuffer(who, `${what}.data`, t.data);
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
  private readonly control: NativeStepControl;

  /** For the subclasses: `name` picks the algorithm; arguments are checked here. */
  protected constructor(name: OptimizerName, params: unknown, givenOptions: unknown) {
    const alg = ALGORITHMS[name];
    this.alg = alg;
    this.name = name;
    const who = `new ${name}()`;
    this.params = checkParams(who, params);
    this.sizes = this.params.map((p, i) => float32Of(who, `params[${i}]`, p).length);
    const { control, rest: options } = splitControl(who, givenOptions);
    this.control = control;
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
   * before anything is written. Returns what the step found: the global gradient norm (when
   * clipping or checking), the clipping factor, and whether it was skipped for a NaN/Inf
   * gradient and in which parameter (see {@link StepControlOptions}).
   */
  step(grads: readonly (Float32Like | null | undefined)[]): StepReport {
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
      return callNative((nat) => this.alg.step(nat, this.options, p, g as Float32Array[],
        this.buffers, this.steps, this.control));
    }
    return skipped < n ? this.stepSubset(p, g) : { ...NO_REPORT };
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
  // and back so the others keep theirs. The report's parameter index is the caller's.
  private stepSubset(p: Float32Array[], g: (Float32Array | null)[]): StepReport {
    const idx: number[] = [];
    for (let i = 0; i < g.length; i++) if (g[i] !== null) idx.push(i);
    const buffers: Buffers = {};
    for (const name of this.alg.buffers(this.options)) {
      buffers[name] = idx.map((i) => this.buffers[name]![i]);
    }
    const steps = Float64Array.from(idx, (i) => this.steps[i]);
    const report = callNative((n) => this.alg.step(n, this.options, idx.map((i) => p[i]),
      idx.map((i) => g[i]!), buffers, steps, this.control));
    idx.forEach((i, k) => { this.steps[i] = steps[k]; });
    if (report.nonFiniteParam >= 0) report.nonFiniteParam = idx[report.nonFiniteParam];
    return report;
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
  constructor(params: readonly Float32Like[], options: SGDOptions & StepControlOptions = {}) {
    super('SGD', params, options);
  }
}

/** RMSprop, optionally centered and with momentum, as torch.optim.RMSprop. */
export class RMSprop extends Optimizer {
  constructor(params: readonly Float32Like[], options: RMSpropOptions & StepControlOptions = {}) {
    super('RMSprop', params, options);
  }
}

/** Adam with L2 weight decay (added to the gradient) and optional AMSGrad, as torch.optim.Adam. */
export class Adam extends Optimizer {
  constructor(params: readonly Float32Like[], options: AdamOptions & StepControlOptions = {}) {
    super('Adam', params, options);
  }
}

/** Adam with decoupled weight decay (`p *= 1 - lr * weightDecay`), as torch.optim.AdamW. */
export class AdamW extends Optimizer {
  constructor(params: readonly Float32Like[], options: AdamWOptions & StepControlOptions = {}) {
    super('AdamW', params, options);
  }
}

/**
 * Lion (Chen et al. 2023): the sign of an interpolation of momentum and gradient, one state
 * array per parameter (half of Adam's).
 */
export class Lion extends Optimizer {
  constructor(params: readonly Float32Like[], options: LionOptions & StepControlOptions = {}) {
    super('Lion', params, options);
  }
}

/** LAMB (You et al. 2020): Adam's direction scaled per parameter by ||p|| / ||update||. */
export class LAMB extends Optimizer {
  constructor(params: readonly Float32Like[], options: LAMBOptions & StepControlOptions = {}) {
    super('LAMB', params, options);
  }
}

/** Options of {@link Adam8bit} and {@link AdamW8bit}: Adam's (amsgrad excluded) and more. */
export interface Adam8bitOptions extends Omit<AdamOptions, 'amsgrad'>, StepControlOptions {
  /**
   * Parameters with fewer elements keep 32-bit state (quantizing a bias or a norm's scale saves
   * nothing and costs accuracy). Default 4096, as bitsandbytes.
   */
  minSize8bit?: number;
}

/** Bytes of optimizer state held, from {@link Adam8bit.stateBytes}. */
export interface StateBytes {
  /** What the state occupies now (codes, block scales and the 32-bit state of small tensors). */
  bytes: number;
  /** What 32-bit Adam state (m and v as float32) would occupy for the same parameters. */
  bytes32bit: number;
}

// One parameter's state: 8-bit codes with per-block absolute maxima, or 32-bit arrays.
type State8 = { mCodes: Uint8Array; mAbsmax: Float32Array; vCodes: Uint8Array;
                vAbsmax: Float32Array } | { expAvg: Float32Array; expAvgSq: Float32Array };

const ADAM8BIT_BLOCK = 2048;

/**
 * Adam with 8-bit state (Dettmers et al. 2022): m and v stored as one byte per element in blocks
 * of 2048 with a float32 absolute maximum each, decoded through a logarithmic ("dynamic") map;
 * 2.004 bytes of state per element instead of 8 (3.99x smaller). Parameters below
 * `minSize8bit` elements keep 32-bit state, in the same fused call.
 * LIMITATION: no amsgrad (refused with a clear error: it would need a third quantized array)
 * and no stateDict()/loadStateDict() (the 8-bit layout is not part of the versioned state-dict
 * format yet); checkpoint with Adam/AdamW where exact resumption matters.
 */
export class Adam8bit {
  /** 'Adam8bit' or 'AdamW8bit'. */
  readonly name: 'Adam8bit' | 'AdamW8bit';
  private readonly params: readonly Float32Like[];
  private readonly sizes: readonly number[];
  private readonly state: State8[];
  private readonly steps: Float64Array;
  private readonly control: NativeStepControl;
  private options: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number;
                     amsgrad: boolean; decoupled: boolean; biasCorrection: boolean };

  constructor(params: readonly Float32Like[], options: Adam8bitOptions = {},
              decoupled = false) {
    this.name = decoupled ? 'AdamW8bit' : 'Adam8bit';
    const who = `new ${this.name}()`;
    this.params = checkParams(who, params);
    this.sizes = this.params.map((p, i) => float32Of(who, `params[${i}]`, p).length);
    const { control, rest } = splitControl(who, options);
    this.control = control;
    const given = { ...(rest as Record<string, unknown>) };
    const minSize = given.minSize8bit ?? 4096;
    delete given.minSize8bit;
    if (typeof minSize !== 'number' || !(minSize >= 0)) {
      throw new NodecclRangeError(`${who}: options.minSize8bit must be a number >= 0, got ` +
        `${describeValue(minSize)}`);
    }
    if ('amsgrad' in given) {
      throw new NodecclTypeError(`${who}: amsgrad is not supported with 8-bit state ` +
        '(LIMITATION: it would need a third quantized array); use Adam or AdamW for amsgrad');
    }
    const o = resolveOptions(who, ALGORITHMS[decoupled ? 'AdamW' : 'Adam'], given, 'options');
    const betas = o.betas as readonly [number, number];
    this.options = { lr: num(o, 'lr'), beta1: betas[0], beta2: betas[1], eps: num(o, 'eps'),
                     weightDecay: num(o, 'weightDecay'), amsgrad: false, decoupled,
                     biasCorrection: bool(o, 'biasCorrection') };
    callNative((n) => n.adamValidate(this.options));
    this.steps = new Float64Array(this.params.length);
    this.state = this.sizes.map((n) => (n >= minSize
      ? { mCodes: new Uint8Array(n), vCodes: new Uint8Array(n),
          mAbsmax: new Float32Array(Math.ceil(n / ADAM8BIT_BLOCK)),
          vAbsmax: new Float32Array(Math.ceil(n / ADAM8BIT_BLOCK)) }
      : { expAvg: new Float32Array(n), expAvgSq: new Float32Array(n) }));
  }

  /** The learning rate; set it between steps to follow a schedule. */
  get lr(): number {
    return this.options.lr;
  }

  set lr(value: number) {
    const next = { ...this.options, lr: checkOptionType(`${this.name}.lr`, 'value', 'number',
      value) as number };
    callNative((n) => n.adamValidate(next));
    this.options = next;
  }

  /** Updates every parameter from its gradient (one per parameter, in order; no nulls). */
  step(grads: readonly Float32Like[]): StepReport {
    const who = `${this.name}.step()`;
    if (!Array.isArray(grads) || grads.length !== this.params.length) {
      throw new NodecclTypeError(`${who}: grads must be an array of ${this.params.length} ` +
        `gradients, got ${describeValue(grads)}`);
    }
    const p = this.params.map((x, i) => float32Of(who, `params[${i}]`, x));
    const g = grads.map((x, i) => float32Of(who, `grads[${i}]`, x));
    return callNative((n) => n.adam8bitStep(this.options, p, g, this.state, this.steps,
      this.control));
  }

  /** Bytes of state held now, and what 32-bit Adam would hold for the same parameters. */
  stateBytes(): StateBytes {
    let bytes = 0;
    for (const s of this.state) {
      bytes += 'mCodes' in s
        ? s.mCodes.byteLength + s.vCodes.byteLength + s.mAbsmax.byteLength + s.vAbsmax.byteLength
        : s.expAvg.byteLength + s.expAvgSq.byteLength;
    }
    return { bytes, bytes32bit: this.sizes.reduce((a, n) => a + 8 * n, 0) };
  }
}

/** AdamW (decoupled weight decay, default 1e-2) with 8-bit state; see {@link Adam8bit}. */
export class AdamW8bit extends Adam8bit {
  constructor(params: readonly Float32Like[], options: Adam8bitOptions = {}) {
    super(params, options, true);
  }
}

/** The instruction set the native kernels use on this CPU: 'baseline', 'avx2' or 'avx512'. */
export function kernelIsa(): string {
  return callNative((n) => n.optimIsa());
}
