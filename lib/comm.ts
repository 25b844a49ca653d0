// SPDX-License-Identifier: Apache-2.0
// The Communicator: typed, Promise-returning collectives over the native communicator. Every
// method checks its arguments here (so errors name the JS argument), then queues the work on the
// communicator's native worker thread; operations run in the order they were called.
import { checkBuffer, checkTensorLength } from './buffers';
import { DTYPE_CODES, inferDType, REDUCE_OP_CODES, type DType, type ReduceOpName } from './dtype';
import { fromNative, NodecclError, NodecclRangeError, NodecclTypeError } from './errors';
import type { NativeCommunicator } from './native';
import { checkOptions, describeValue } from './options';
import type { Store, StoreServer } from './store';
import { Tensor } from './tensor';
import { compressedAllReduce, type Compression } from './quant';

/** What collectives accept: a Tensor, or a TypedArray whose dtype is unambiguous. */
export type TensorLike =
  | Tensor
  | Float32Array | Float64Array | Int32Array | Int8Array | Uint8Array;

/** Options every collective takes. */
export interface CollectiveOptions {
  /** Per-call deadline in milliseconds; defaults to the communicator's `timeoutMs`. */
  timeoutMs?: number;
}

export interface ReduceOptions extends CollectiveOptions {
  /** The reduction: sum (default), avg (sum / size), prod, min, max. */
  op?: ReduceOpName;
  /**
   * allReduce only: send an encoded form (e.g. 'int8', 'sign1', { kind: 'topk', ratio: 0.01 })
   * with error feedback; float32, sum/avg. See lib/quant.ts compressedAllReduce.
   */
  compression?: Compression;
}

export interface RootOptions extends CollectiveOptions {
  /** The rank whose data is broadcast, or that receives the reduction. Default 0. */
  root?: number;
}

interface View {
  data: ArrayBufferView & { length: number };
  dtype: DType;
  count: number;
}

type Ctor = new (n: number) => ArrayBufferView & { length: number };

/** Resolves a Tensor or TypedArray argument to its array, dtype and element count. */
function view(fn: string, what: string, x: unknown): View {
  if (x instanceof Tensor) {
    checkBuffer(fn, what, x.data);
    const expected = x.shape.reduce((a, d) => a * d, 1);
    checkTensorLength(fn, what, x.data.length, x.shape, expected);
    return { data: x.data as View['data'], dtype: x.dtype, count: x.size };
  }
  if (ArrayBuffer.isView(x) && !(x instanceof DataView)) {
    checkBuffer(fn, what, x);
    const dtype = inferDType(x as never, `${fn}: ${what}`);
    return { data: x as View['data'], dtype, count: (x as unknown as { length: number }).length };
  }
  throw new NodecclTypeError(`${fn}: ${what} must be a Tensor or a TypedArray, got ` +
    describeValue(x));
}

/** A group of `size` processes that communicate; created by `init()`. */
export class Communicator {
  /** This process's rank, 0..size-1. */
  readonly rank: number;
  /** The number of ranks. */
  readonly size: number;
  /** Default per-operation timeout in milliseconds. */
  readonly timeoutMs: number;
  /** A client of the job's key-value store, free for the application's own keys. */
  readonly store: Store;

  private destroyed = false;

  /** @internal Use `init()`. */
  constructor(private readonly nativeComm: NativeCommunicator, store: Store,
              private readonly server: StoreServer | null, timeoutMs: number) {
    this.rank = nativeComm.rank();
    this.size = nativeComm.size();
    this.store = store;
    this.timeoutMs = timeoutMs;
  }

  /**
   * Reduces `x` across all ranks in place; every rank ends with the same result (bitwise).
   * float16/bfloat16 accumulate in float32 and round once. Resolves to `x`.
   */
  async allReduce<T extends TensorLike>(x: T, options: ReduceOptions = {}): Promise<T> {
    const fn = 'allReduce';
    checkOptions(fn, options, ['op', 'timeoutMs', 'compression']);
    if (options.compression !== undefined) {
      return compressedAllReduce(this, x, options.compression, options.op, options.timeoutMs);
    }
    const v = view(fn, 'tensor', x);
    const op = this.op(fn, options.op);
    await this.run(fn, () => this.nativeComm.allReduce(v.data, v.count, DTYPE_CODES[v.dtype], op,
      this.timeout(fn, options)));
    return x;
  }

  /** Copies `root`'s `x` into `x` on every rank. Resolves to `x`. */
  async broadcast<T extends TensorLike>(x: T, options: RootOptions = {}): Promise<T> {
    const fn = 'broadcast';
    checkOptions(fn, options, ['root', 'timeoutMs']);
    const v = view(fn, 'tensor', x);
    const root = this.peer(fn, 'root', options.root ?? 0, true);
    await this.run(fn, () => this.nativeComm.broadcast(v.data, v.count, DTYPE_CODES[v.dtype],
      root, this.timeout(fn, options)));
    return x;
  }

  /** Reduces `x` onto `root` in place; other ranks' `x` is left unchanged. Resolves to `x`. */
  async reduce<T extends TensorLike>(x: T, options: ReduceOptions & RootOptions = {}):
      Promise<T> {
    const fn = 'reduce';
    checkOptions(fn, options, ['op', 'root', 'timeoutMs']);
    const v = view(fn, 'tensor', x);
    const op = this.op(fn, options.op);
    const root = this.peer(fn, 'root', options.root ?? 0, true);
    await this.run(fn, () => this.nativeComm.reduce(v.data, v.count, DTYPE_CODES[v.dtype], op,
      root, this.timeout(fn, options)));
    return x;
  }

  /**
   * Gathers every rank's `input` into `output` in rank order (`size` × input length; allocated
   * when omitted: a Tensor of shape [size, ...input.shape], or a TypedArray). Resolves to it.
   */
  async allGather<T extends TensorLike>(input: T, output?: T, options: CollectiveOptions = {}):
      Promise<T> {
    const fn = 'allGather';
    checkOptions(fn, options, ['timeoutMs']);
    const vin = view(fn, 'input', input);
    const out = output ?? this.allocate(input, vin.count * this.size, [this.size]);
    const vout = view(fn, 'output', out);
    this.sameDType(fn, vin, vout);
    if (vout.count !== vin.count * this.size) {
      throw new NodecclRangeError(`rank ${this.rank}: allGather output has ${vout.count} ` +
        `elements but needs ${vin.count * this.size} (input ${vin.count} × ${this.size} ranks)`);
    }
    await this.run(fn, () => this.nativeComm.allGather(vin.data, vout.data, vin.count,
      DTYPE_CODES[vin.dtype], this.timeout(fn, options)));
    return out;
  }

  /**
   * Reduces `input` (size × n elements) across ranks and leaves block `rank` of the result in
   * `output` (n elements; allocated when omitted). `input` is unchanged. Resolves to output.
   */
  async reduceScatter<T extends TensorLike>(input: T, output?: T, options: ReduceOptions = {}):
      Promise<T> {
    const fn = 'reduceScatter';
    checkOptions(fn, options, ['op', 'timeoutMs']);
    const vin = view(fn, 'input', input);
    if (vin.count % this.size !== 0) {
      throw new NodecclRangeError(`rank ${this.rank}: reduceScatter input has ${vin.count} ` +
        `elements, not a multiple of the ${this.size} ranks; pad it to a multiple`);
    }
    const n = vin.count / this.size;
    const out = output ?? this.allocate(input, n, null);
    const vout = view(fn, 'output', out);
    this.sameDType(fn, vin, vout);
    if (vout.count !== n) {
      throw new NodecclRangeError(`rank ${this.rank}: reduceScatter output has ${vout.count} ` +
        `elements but needs ${n} (input ${vin.count} / ${this.size} ranks)`);
    }
    const op = this.op(fn, options.op);
    await this.run(fn, () => this.nativeComm.reduceScatter(vin.data, vout.data, n,
      DTYPE_CODES[vin.dtype], op, this.timeout(fn, options)));
    return out;
  }

  /** Resolves once every rank has called barrier(). */
  async barrier(options: CollectiveOptions = {}): Promise<void> {
    checkOptions('barrier', options, ['timeoutMs']);
    await this.run('barrier', () => this.nativeComm.barrier(this.timeout('barrier', options)));
  }

  /** Sends `x` to `peer`, which must call recv() with the same length and dtype. */
  async send(x: TensorLike, peer: number, options: CollectiveOptions = {}): Promise<void> {
    checkOptions('send', options, ['timeoutMs']);
    const v = view('send', 'tensor', x);
    const p = this.peer('send', 'peer', peer, false);
    await this.run('send', () => this.nativeComm.send(v.data, v.count, DTYPE_CODES[v.dtype], p,
      this.timeout('send', options)));
  }

  /** Receives into `x` from `peer`, which must call send() with the same length and dtype. */
  async recv<T extends TensorLike>(x: T, peer: number, options: CollectiveOptions = {}):
      Promise<T> {
    checkOptions('recv', options, ['timeoutMs']);
    const v = view('recv', 'tensor', x);
    const p = this.peer('recv', 'peer', peer, false);
    await this.run('recv', () => this.nativeComm.recv(v.data, v.count, DTYPE_CODES[v.dtype], p,
      this.timeout('recv', options)));
    return x;
  }

  /**
   * Fails the operation in progress and every later one at once, here and on the other ranks
   * (ERR_NODECCL_ABORTED carrying `reason`). Use it to give up on a wedged job.
   */
  abort(reason = 'aborted by the application'): void {
    this.nativeComm.abort(reason);
  }

  /** Waits for queued operations, then closes connections (and, on rank 0, the store). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    try {
      await this.nativeComm.destroy();
    } catch (e) {
      throw fromNative(e);
    } finally {
      this.store.close();
      this.server?.stop();
    }
  }

  // ---- helpers ----------------------------------------------------------------------------

  private async run(fn: string, start: () => Promise<void>): Promise<void> {
    if (this.destroyed) {
      throw new NodecclError('ERR_NODECCL_DESTROYED', `rank ${this.rank}: ${fn} called on a ` +
        'destroyed communicator; create a new one with init()');
    }
    try {
      await start();
    } catch (e) {
      throw fromNative(e);
    }
  }

  private op(fn: string, name: ReduceOpName | undefined): number {
    const op = name ?? 'sum';
    const code = (REDUCE_OP_CODES as Record<string, number>)[op];
    if (code === undefined) {
      throw new NodecclTypeError(`rank ${this.rank}: ${fn} op must be one of ` +
        `${Object.keys(REDUCE_OP_CODES).join(', ')}; got ${describeValue(op)}`);
    }
    return code;
  }

  private peer(fn: string, what: string, r: unknown, selfAllowed: boolean): number {
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 0 || r >= this.size) {
      throw new NodecclRangeError(`rank ${this.rank}: ${fn} ${what} ${describeValue(r)} is ` +
        `out of range for a world of ${this.size} ranks; pass an integer in 0..${this.size - 1}`);
    }
    if (!selfAllowed && r === this.rank) {
      throw new NodecclRangeError(`rank ${this.rank}: ${fn} ${what} is this rank itself; ` +
        'pass another rank');
    }
    return r;
  }

  private timeout(fn: string, options: CollectiveOptions): number {
    const t = options.timeoutMs ?? this.timeoutMs;
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) {
      throw new NodecclRangeError(`rank ${this.rank}: ${fn} timeoutMs must be a positive ` +
        `number of milliseconds, got ${describeValue(t)}`);
    }
    return t;
  }

  private sameDType(fn: string, a: View, b: View): void {
    if (a.dtype !== b.dtype) {
      throw new NodecclTypeError(`rank ${this.rank}: ${fn} input is ${a.dtype} but output is ` +
        `${b.dtype}; pass the same dtype`);
    }
  }

  private allocate<T extends TensorLike>(like: T, count: number, lead: number[] | null): T {
    if (like instanceof Tensor) {
      const shape = lead ? [...lead, ...like.shape] : [count];
      const Array_ = like.data.constructor as Ctor;
      return new Tensor(new Array_(count) as never, like.dtype, shape) as unknown as T;
    }
    const Array_ = (like as ArrayBufferView).constructor as Ctor;
    return new Array_(count) as unknown as T;
  }
}
