// SPDX-License-Identifier: Apache-2.0
// GPUs: whether CUDA is usable (and why not), CUDA tensors, the fused GPU optimizers and NCCL
// communicators. Everything runs in the CUDA plugin (nodeccl_cuda.so), which the addon loads on
// first use; without it, or without a GPU or driver, `available()` is false and `why()` says why.
import type { Communicator } from './comm';
import {
  checkDType, DTYPE_CODES, DTYPE_SIZES, REDUCE_OP_CODES, checkReduceOp, arrayConstructor,
  typedArrayName, type DType, type DTypeArrayMap, type ReduceOpName,
} from './dtype';
import { fromNative, NodecclError, NodecclRangeError, NodecclTypeError } from './errors';
import { native } from './native';
import { checkOptions, describeValue } from './options';
import { Tensor, shapeSize } from './tensor';

// ---- what bindings/cuda.cc exports ----------------------------------------------------------
interface NativeCudaBuffer {
  dispose(): void;
  isDisposed(): boolean;
  device(): number;
  byteLength(): number;
  copyFromHost(src: ArrayBufferView): void;
  copyToHost(dst: ArrayBufferView): void;
}
interface NativeNcclComm {
  run(op: number, send: NativeCudaBuffer | null, recv: NativeCudaBuffer | null, count: number,
      dtype: number, reduceOp: number, peer: number, timeoutMs: number): Promise<void>;
  abort(reason: string): void;
  destroy(): void;
}
interface NativeCuda {
  why(): string | null;
  deviceCount(): number;
  describe(device: number): string;
  CudaBuffer: new (device: number, bytes: number) => NativeCudaBuffer;
  optimStep(kind: number, device: number, options: Record<string, number | boolean>,
            params: NativeCudaBuffer[], grads: NativeCudaBuffer[],
            s0: NativeCudaBuffer[] | null, s1: NativeCudaBuffer[] | null,
            s2: NativeCudaBuffer[] | null, steps: Float64Array): void;
  ncclVersion(): { version: number; path: string };
  ncclUniqueId(): Uint8Array;
  createNccl(device: number, rank: number, size: number, id: Uint8Array):
    Promise<NativeNcclComm>;
}

function nativeCuda(): NativeCuda {
  const cuda = (native() as unknown as { cuda?: NativeCuda }).cuda;
  if (cuda === undefined) {
    throw new NodecclError('ERR_NODECCL_LOAD', 'nodeccl: this addon was built without CUDA ' +
      'support (no cuda export); rebuild it with `npm run build:native`');
  }
  return cuda;
}

function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fromNative(e);
  }
}

// ---- availability ----------------------------------------------------------------------------

/**
 * Why CUDA cannot be used here, e.g. "no CUDA driver or device (cudaGetDeviceCount:
 * cudaErrorInsufficientDriver ...)", or null when at least one device is usable.
 */
export function why(): string | null {
  return call(() => nativeCuda().why());
}

/** True when the CUDA plugin is loaded and at least one device is visible. */
export function available(): boolean {
  return why() === null;
}

/** The number of visible devices. Throws ERR_NODECCL_LOAD (with the reason) when none. */
export function deviceCount(): number {
  return call(() => nativeCuda().deviceCount());
}

/** A device's name, compute capability and memory, e.g. "NVIDIA H200, compute 9.0, 139 GiB". */
export function describe(device = 0): string {
  return call(() => nativeCuda().describe(device));
}

/** The NCCL library found (see NODECCL_NCCL_LIB) and its version. */
export interface NcclInfo {
  /** ncclGetVersion's code, e.g. 22005. */
  version: number;
  /** "2.20.5". */
  versionString: string;
  /** The file it was loaded from. */
  path: string;
}

/**
 * Loads NCCL (needs the CUDA plugin, not a GPU) and reports its version. Throws
 * ERR_NODECCL_LOAD naming every path tried, a missing function, or a version older than 2.10.
 */
export function ncclVersion(): NcclInfo {
  const v = call(() => nativeCuda().ncclVersion());
  const c = v.version;
  const versionString = c >= 10000
    ? `${Math.floor(c / 10000)}.${Math.floor((c % 10000) / 100)}.${c % 100}`
    : `${Math.floor(c / 1000)}.${Math.floor((c % 1000) / 100)}.${c % 100}`;
  return { version: c, versionString, path: v.path };
}

// ---- CUDA tensors ------------------------------------------------------------------------------

const BRAND = Symbol.for('nodeccl.CudaTensor');

/** Options of {@link tensor} and {@link zeros}. */
export interface CudaTensorOptions<D extends DType = DType> {
  /** The device index. Default 0. */
  device?: number;
  /** The element type (zeros only; tensor() takes the host tensor's). Default 'float32'. */
  dtype?: D;
}

/**
 * A tensor in GPU memory. Its memory is freed by {@link CudaTensor.dispose}, or by the garbage
 * collector when the tensor is unreachable; dispose large tensors yourself, since the collector
 * does not see GPU memory pressure.
 */
export class CudaTensor<D extends DType = DType> {
  /** The element type. */
  readonly dtype: D;
  /** The dimensions (frozen). */
  readonly shape: readonly number[];
  /** The device index. */
  readonly device: number;
  /** @internal */
  readonly buffer: NativeCudaBuffer;
  /** @internal marks CUDA tensors for other modules without an import. */
  readonly [BRAND] = true;

  /** @internal Use {@link tensor} or {@link zeros}. */
  constructor(buffer: NativeCudaBuffer, dtype: D, shape: readonly number[]) {
    this.buffer = buffer;
    this.dtype = dtype;
    this.shape = Object.freeze(shape.slice());
    this.device = buffer.device();
  }

  /** The number of elements. */
  get size(): number {
    return shapeSize(this.shape);
  }

  /** The number of bytes on the device. */
  get byteLength(): number {
    return this.size * DTYPE_SIZES[this.dtype];
  }

  /** True once dispose() has run; a disposed tensor can no longer be used. */
  get disposed(): boolean {
    return this.buffer.isDisposed();
  }

  /** Frees the device memory now. Idempotent. */
  dispose(): void {
    this.buffer.dispose();
  }

  /** Copies the values to a new host tensor of the same dtype and shape (pinned staging). */
  toHost(): Tensor<D> {
    const Ctor = arrayConstructor(this.dtype);
    const data = new Ctor(this.size) as DTypeArrayMap[D];
    call(() => this.buffer.copyToHost(data));
    return new Tensor(data, this.dtype, this.shape);
  }

  /** Overwrites the values from a host tensor or TypedArray of the same dtype and length. */
  copyFrom(host: Tensor<D> | DTypeArrayMap[D]): this {
    const data = host instanceof Tensor ? host.data : host;
    call(() => this.buffer.copyFromHost(data));
    return this;
  }

  /** E.g. `CudaTensor(float32, [2, 3], cuda:0)`. */
  toString(): string {
    return `CudaTensor(${this.dtype}, [${this.shape.join(', ')}], cuda:${this.device})`;
  }
}

/** True for a {@link CudaTensor} (from any copy of this module). */
export function isCudaTensor(value: unknown): value is CudaTensor {
  return typeof value === 'object' && value !== null &&
    (value as { [BRAND]?: boolean })[BRAND] === true;
}

// Throws ERR_NODECCL_LOAD naming `fn` and the reason when no device is usable.
function requireAvailable(fn: string): void {
  const reason = why();
  if (reason !== null) {
    throw new NodecclError('ERR_NODECCL_LOAD', `${fn}: CUDA is not available: ${reason}`);
  }
}

function checkDevice(fn: string, device: unknown): number {
  if (device === undefined) return 0;
  if (typeof device !== 'number' || !Number.isInteger(device) || device < 0) {
    throw new NodecclRangeError(`${fn}: device must be an integer >= 0, got ` +
      describeValue(device));
  }
  return device;
}

/**
 * Copies a host tensor (or TypedArray whose dtype is unambiguous) to a device.
 * @throws NodecclError ERR_NODECCL_LOAD when CUDA is unavailable (the message says why).
 */
export function tensor<D extends DType>(host: Tensor<D>, options?: CudaTensorOptions):
  CudaTensor<D>;
export function tensor(host: Float32Array, options?: CudaTensorOptions): CudaTensor<'float32'>;
export function tensor(host: Tensor | Float32Array, options: CudaTensorOptions = {}): CudaTensor {
  const fn = 'cuda.tensor()';
  const opts = checkOptions(fn, options, ['device']);
  const device = checkDevice(fn, opts.device);
  requireAvailable(fn);
  let t: Tensor;
  if (host instanceof Tensor) t = host;
  else if (typedArrayName(host) === 'Float32Array') t = new Tensor(host, 'float32');
  else {
    throw new NodecclTypeError(`${fn}: host must be a Tensor or a Float32Array, got ` +
      `${describeValue(host)}; wrap other arrays with tensor(data, { dtype })`);
  }
  const buffer = call(() => new (nativeCuda().CudaBuffer)(device, t.byteLength));
  const out = new CudaTensor(buffer, t.dtype, t.shape);
  return out.copyFrom(t.data as never);
}

/** A new zero-filled tensor on a device. */
export function zeros<D extends DType = 'float32'>(
  shape: number | readonly number[], options: CudaTensorOptions<D> = {},
): CudaTensor<D> {
  const fn = 'cuda.zeros()';
  const opts = checkOptions(fn, options, ['device', 'dtype']);
  const device = checkDevice(fn, opts.device);
  const dtype = (opts.dtype === undefined ? 'float32' : checkDType(fn, opts.dtype)) as D;
  requireAvailable(fn);
  const dims = typeof shape === 'number' ? [shape] : [...shape];
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new NodecclRangeError(`${fn}: shape must hold integers >= 0, got ` +
      describeValue(shape));
  }
  const bytes = shapeSize(dims) * DTYPE_SIZES[dtype];
  const buffer = call(() => new (nativeCuda().CudaBuffer)(device, bytes));
  return new CudaTensor(buffer, dtype, dims);
}

// ---- fused GPU optimizers -------------------------------------------------------------------

type Kind = 0 | 1 | 2;  // SGD, RMSprop, Adam (AdamW: decoupled)

interface OptimSpec {
  kind: Kind;
  defaults: Record<string, number | boolean | readonly [number, number]>;
  states: (o: Record<string, unknown>) => (string | null)[];  // the three state slots
}

const SPECS: Record<'SGD' | 'RMSprop' | 'Adam' | 'AdamW', OptimSpec> = {
  SGD: { kind: 0, defaults: { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0,
                              nesterov: false },
         states: (o) => [o.momentum !== 0 ? 'momentumBuffer' : null, null, null] },
  RMSprop: { kind: 1, defaults: { lr: 1e-2, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0,
                                  centered: false },
             states: (o) => ['squareAvg', o.momentum !== 0 ? 'momentumBuffer' : null,
                             o.centered ? 'gradAvg' : null] },
  Adam: { kind: 2, defaults: { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0,
                               amsgrad: false, biasCorrection: true },
          states: (o) => ['expAvg', 'expAvgSq', o.amsgrad ? 'maxExpAvgSq' : null] },
  AdamW: { kind: 2, defaults: { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2,
                                amsgrad: false, biasCorrection: true },
           states: (o) => ['expAvg', 'expAvgSq', o.amsgrad ? 'maxExpAvgSq' : null] },
};

function float32CudaParam(who: string, what: string, v: unknown, device?: number): CudaTensor {
  if (!isCudaTensor(v)) {
    const hint = v instanceof Tensor || ArrayBuffer.isView(v)
      ? '; host arrays go to nodeccl.Adam (and friends), or copy them with cuda.tensor(...)' : '';
    throw new NodecclTypeError(`${who}: ${what} must be a float32 CUDA tensor, got ` +
      `${describeValue(v)}${hint}`);
  }
  if (v.dtype !== 'float32') {
    throw new NodecclTypeError(`${who}: ${what} is a ${v.dtype} CUDA tensor; only float32 is ` +
      'supported');
  }
  if (device !== undefined && v.device !== device) {
    throw new NodecclRangeError(`${who}: ${what} is on cuda:${v.device} but params[0] on ` +
      `cuda:${device}; keep one optimizer's tensors on one device`);
  }
  return v;
}

/**
 * The base of the GPU optimizers: torch.optim's update rules (the same as nodeccl.SGD, RMSprop,
 * Adam, AdamW, bit for bit), one fused kernel launch per step over every parameter.
 */
export abstract class CudaOptimizer {
  private readonly spec: OptimSpec;
  private readonly params: CudaTensor[];
  private readonly device: number;
  private readonly options: Record<string, number | boolean>;
  private readonly state: (CudaTensor[] | null)[];
  private readonly steps: Float64Array;

  protected constructor(readonly name: keyof typeof SPECS, params: unknown, options: unknown) {
    const who = `new cuda.${name}()`;
    this.spec = SPECS[name];
    if (!Array.isArray(params) || params.length === 0) {
      throw new NodecclTypeError(`${who}: params must be a non-empty array of float32 CUDA ` +
        `tensors, got ${describeValue(params)}`);
    }
    const first = float32CudaParam(who, 'params[0]', params[0]);
    this.device = first.device;
    this.params = params.map((p, i) => float32CudaParam(who, `params[${i}]`, p, this.device));
    this.options = this.resolve(who, options);
    this.state = this.spec.states(this.options).map((slot) => slot === null ? null
      : this.params.map((p) => zeros(p.shape, { device: this.device })));
    this.steps = new Float64Array(this.params.length);
  }

  // Defaults, then the caller's options; ranges are checked by the CPU validator.
  private resolve(who: string, given: unknown): Record<string, number | boolean> {
    const keys = Object.keys(this.spec.defaults);
    const o = { ...this.spec.defaults, ...checkOptions(who, given as object | undefined, keys) };
    const flat: Record<string, number | boolean> = {};
    for (const [k, v] of Object.entries(o)) {
      if (k === 'betas') {
        const b = v as readonly number[];
        if (!Array.isArray(b) || b.length !== 2) {
          throw new NodecclTypeError(`${who}: options.betas must be [beta1, beta2]`);
        }
        [flat.beta1, flat.beta2] = b as [number, number];
      } else if (typeof v !== typeof this.spec.defaults[k]) {
        throw new NodecclTypeError(`${who}: options.${k} must be a ` +
          `${typeof this.spec.defaults[k]}, got ${describeValue(v)}`);
      } else {
        flat[k] = v as number | boolean;
      }
    }
    flat.decoupled = this.name === 'AdamW';
    const n = native();
    call(() => {
      if (this.spec.kind === 0) n.sgdValidate(flat as never);
      else if (this.spec.kind === 1) n.rmspropValidate(flat as never);
      else n.adamValidate(flat as never);
    });
    return flat;
  }

  /** One fused step: params[i] -= update(grads[i]); grads must match params in length. */
  step(grads: readonly CudaTensor[]): void {
    const who = `cuda.${this.name}.step()`;
    if (!Array.isArray(grads) || grads.length !== this.params.length) {
      throw new NodecclRangeError(`${who}: grads must be an array of ${this.params.length} ` +
        `CUDA tensors (one per parameter), got ${describeValue(grads)}`);
    }
    const g = grads.map((x, i) => float32CudaParam(who, `grads[${i}]`, x, this.device));
    g.forEach((x, i) => {
      if (x.size !== this.params[i].size) {
        throw new NodecclRangeError(`${who}: grads[${i}] has ${x.size} elements but ` +
          `params[${i}] has ${this.params[i].size}`);
      }
    });
    const bufs = (ts: CudaTensor[] | null) => (ts === null ? null : ts.map((t) => t.buffer));
    call(() => nativeCuda().optimStep(this.spec.kind, this.device, this.options,
      this.params.map((p) => p.buffer), g.map((x) => x.buffer), bufs(this.state[0]),
      bufs(this.state[1]), bufs(this.state[2]), this.steps));
  }

  /** Frees the optimizer's state on the device. */
  dispose(): void {
    for (const ts of this.state) ts?.forEach((t) => t.dispose());
  }
}

/** torch.optim.SGD on the GPU. */
export class SGD extends CudaOptimizer {
  constructor(params: readonly CudaTensor[], options?: Record<string, unknown>) {
    super('SGD', params, options);
  }
}
/** torch.optim.RMSprop on the GPU. */
export class RMSprop extends CudaOptimizer {
  constructor(params: readonly CudaTensor[], options?: Record<string, unknown>) {
    super('RMSprop', params, options);
  }
}
/** torch.optim.Adam on the GPU. */
export class Adam extends CudaOptimizer {
  constructor(params: readonly CudaTensor[], options?: Record<string, unknown>) {
    super('Adam', params, options);
  }
}
/** torch.optim.AdamW on the GPU. */
export class AdamW extends CudaOptimizer {
  constructor(params: readonly CudaTensor[], options?: Record<string, unknown>) {
    super('AdamW', params, options);
  }
}

// ---- NCCL ----------------------------------------------------------------------------------

const NCCL_OP = { allReduce: 0, broadcast: 1, reduce: 2, allGather: 3, reduceScatter: 4,
                  send: 5, recv: 6 } as const;

/** Options of {@link createNcclCommunicator}. */
export interface NcclOptions {
  /** This rank's device. Default: rank % deviceCount(). */
  device?: number;
  /** Per-operation deadline in ms (then the communicator is aborted). Default: comm's. */
  timeoutMs?: number;
}

let ncclSerial = 0;

/**
 * NCCL collectives on CUDA tensors, with the Communicator's method names and options. Every rank
 * must call the same operations in the same order. A failed or timed-out operation aborts the
 * communicator (NCCL cannot resume one): later calls reject with ERR_NODECCL_ABORTED.
 */
export class NcclCommunicator {
  /** @internal Use {@link createNcclCommunicator}. */
  constructor(private readonly nc: NativeNcclComm, readonly rank: number, readonly size: number,
              readonly device: number, readonly timeoutMs: number) {}

  private async run(fn: string, op: keyof typeof NCCL_OP, send: CudaTensor | null,
                    recv: CudaTensor | null, count: number, dtype: DType,
                    reduce: ReduceOpName, peer: number, timeoutMs?: number): Promise<void> {
    try {
      await this.nc.run(NCCL_OP[op], send?.buffer ?? null, recv?.buffer ?? null, count,
        DTYPE_CODES[dtype], REDUCE_OP_CODES[reduce], peer, timeoutMs ?? this.timeoutMs);
    } catch (e) {
      const err = fromNative(e);
      err.message = `${fn}: ${err.message}`;
      throw err;
    }
  }

  private arg(fn: string, what: string, x: unknown): CudaTensor {
    if (!isCudaTensor(x)) {
      throw new NodecclTypeError(`${fn}: ${what} must be a CUDA tensor, got ` +
        `${describeValue(x)}; host tensors go through nodeccl's Communicator`);
    }
    return x;
  }

  /** Reduces `x` across ranks in place. */
  async allReduce(x: CudaTensor, options: { op?: ReduceOpName; timeoutMs?: number } = {}):
    Promise<CudaTensor> {
    const fn = 'NcclCommunicator.allReduce()';
    const t = this.arg(fn, 'x', x);
    const op = checkReduceOp(fn, options.op ?? 'sum');
    await this.run(fn, 'allReduce', t, t, t.size, t.dtype, op, 0, options.timeoutMs);
    return t;
  }

  /** Copies root's `x` to every rank. */
  async broadcast(x: CudaTensor, options: { root?: number; timeoutMs?: number } = {}):
    Promise<CudaTensor> {
    const fn = 'NcclCommunicator.broadcast()';
    const t = this.arg(fn, 'x', x);
    await this.run(fn, 'broadcast', t, t, t.size, t.dtype, 'sum', options.root ?? 0,
      options.timeoutMs);
    return t;
  }

  /** Gathers every rank's `input` into `output` (size * input.size elements), rank order. */
  async allGather(input: CudaTensor, output: CudaTensor,
                  options: { timeoutMs?: number } = {}): Promise<CudaTensor> {
    const fn = 'NcclCommunicator.allGather()';
    const i = this.arg(fn, 'input', input), o = this.arg(fn, 'output', output);
    if (o.size !== i.size * this.size || o.dtype !== i.dtype) {
      throw new NodecclRangeError(`${fn}: output must be ${i.dtype} with ${i.size * this.size} ` +
        `elements (size x input), got ${o.dtype} with ${o.size}`);
    }
    await this.run(fn, 'allGather', i, o, i.size, i.dtype, 'sum', 0, options.timeoutMs);
    return o;
  }

  /** Reduces `input` and leaves block `rank` (input.size / size elements) in `output`. */
  async reduceScatter(input: CudaTensor, output: CudaTensor,
                      options: { op?: ReduceOpName; timeoutMs?: number } = {}):
    Promise<CudaTensor> {
    const fn = 'NcclCommunicator.reduceScatter()';
    const i = this.arg(fn, 'input', input), o = this.arg(fn, 'output', output);
    if (o.size * this.size !== i.size || o.dtype !== i.dtype) {
      throw new NodecclRangeError(`${fn}: input must hold size x output elements of one ` +
        `dtype, got ${i.dtype} ${i.size} and ${o.dtype} ${o.size}`);
    }
    const op = checkReduceOp(fn, options.op ?? 'sum');
    await this.run(fn, 'reduceScatter', i, o, o.size, i.dtype, op, 0, options.timeoutMs);
    return o;
  }

  /** Sends `x` to `peer`, which must recv() a tensor of the same size and dtype. */
  async send(x: CudaTensor, peer: number, options: { timeoutMs?: number } = {}): Promise<void> {
    const fn = 'NcclCommunicator.send()';
    const t = this.arg(fn, 'x', x);
    await this.run(fn, 'send', t, null, t.size, t.dtype, 'sum', peer, options.timeoutMs);
  }

  /** Receives into `x` from `peer`. */
  async recv(x: CudaTensor, peer: number, options: { timeoutMs?: number } = {}):
    Promise<CudaTensor> {
    const fn = 'NcclCommunicator.recv()';
    const t = this.arg(fn, 'x', x);
    await this.run(fn, 'recv', null, t, t.size, t.dtype, 'sum', peer, options.timeoutMs);
    return t;
  }

  /** Aborts NCCL's work now (pending and later operations reject). */
  abort(reason = 'aborted by the application'): void {
    this.nc.abort(reason);
  }

  /** Waits for queued operations and frees the NCCL communicator. */
  destroy(): void {
    this.nc.destroy();
  }
}

/**
 * Creates a NCCL communicator over the ranks of `comm`: rank 0 makes NCCL's unique id and
 * shares it through comm.store; every rank then joins on its device.
 * @throws NodecclError ERR_NODECCL_LOAD when CUDA or NCCL is unavailable (says why).
 */
export async function createNcclCommunicator(comm: Communicator, options: NcclOptions = {}):
  Promise<NcclCommunicator> {
  const fn = 'cuda.createNcclCommunicator()';
  const opts = checkOptions(fn, options, ['device', 'timeoutMs']);
  const cuda = nativeCuda();
  requireAvailable(fn);
  ncclVersion();  // throws ERR_NODECCL_LOAD when NCCL is missing or too old
  const device = opts.device === undefined ? comm.rank % cuda.deviceCount()
    : checkDevice(fn, opts.device);
  const key = `nodeccl/nccl/${ncclSerial++}/id`;
  let id: Uint8Array;
  if (comm.rank === 0) {
    id = call(() => cuda.ncclUniqueId());
    await comm.store.set(key, id);
  } else {
    id = await comm.store.get(key, { timeoutMs: opts.timeoutMs ?? comm.timeoutMs });
  }
  const nc = await cuda.createNccl(device, comm.rank, comm.size, id).catch((e: unknown) => {
    throw fromNative(e);
  });
  return new NcclCommunicator(nc, comm.rank, comm.size, device, opts.timeoutMs ?? comm.timeoutMs);
}
