// SPDX-License-Identifier: Apache-2.0
// Synchronous data parallelism with gradient bucketing (as PyTorch DDP and Horovod fusion do):
// gradients live in a few flat buckets, and each bucket is all-reduced as soon as its last
// gradient is marked ready, so communication runs on the native thread while JS goes on with
// the rest of the backward pass. Cost per step: one all-reduce per bucket, 2(n-1)/n × S bytes
// sent by each rank in all (ring), for S the bytes of all gradients; no copy when gradients are
// written into `grads` directly, one copy (or add) per gradient when passed to gradReady().
import type { Communicator } from '../comm';
import { NodecclError, NodecclRangeError, NodecclTypeError } from '../errors';
import { checkOptions, describeValue } from '../options';
import type { Compression } from '../quant';
import { Tensor, fromFloat16, toFloat16 } from '../tensor';
import { DEFAULT_BUCKET_BYTES, planBuckets, type BucketPlan } from './buckets';
import { float32Data, type Float32Source } from './float32';

/** What a custom reduction receives for one bucket. */
export interface BucketInfo {
  /** The bucket's index; buckets are reduced in index order on every rank. */
  index: number;
  /** The communicator to reduce over. */
  comm: Communicator;
  /** Whether the result should be the mean over ranks (else the sum). */
  average: boolean;
  /** The per-collective timeout to pass on. */
  timeoutMs: number;
}

/**
 * A custom reduction of one bucket (a DDP "communication hook"): it must leave the reduced
 * gradients in `bucket` (in place) and resolve. Hooks run one at a time in bucket order (a
 * bucket's hook starts when the bucket is ready and the previous hook has finished), so a hook
 * may issue several collectives; it must issue the same ones on every rank.
 */
export type ReduceHook = (bucket: Float32Array, info: BucketInfo) => Promise<unknown>;

/** Options of {@link DataParallel}. */
export interface DataParallelOptions {
  /** Capacity of one fusion bucket in bytes. Default 25 MiB (DDP's `bucket_cap_mb`). */
  bucketBytes?: number;
  /** Divide the summed gradients by the world size. Default true. */
  average?: boolean;
  /** Replace the all-reduce of each bucket (see {@link ReduceHook}). */
  reduce?: ReduceHook;
  /** Timeout of each bucket's collective in ms; default the communicator's. */
  timeoutMs?: number;
  /**
   * Compress each bucket on the wire (`allReduce`'s `compression` option: a codec such as
   * 'int8', with error feedback per bucket by default). Ignored when `reduce` is given.
   */
  compression?: Compression;
}

/**
 * A reduction that halves the bytes on the wire: the bucket is rounded to float16, all-reduced
 * as float16 (accumulated in float32 and rounded once), and widened back (as PyTorch's
 * `fp16_compress_hook`). Gradients beyond ±65504 overflow to infinity; scale the loss first.
 */
export const fp16CompressHook: ReduceHook = async (bucket, info) => {
  const half = new Tensor(toFloat16(bucket), 'float16', [bucket.length]);
  await info.comm.allReduce(half, { op: info.average ? 'avg' : 'sum',
    timeoutMs: info.timeoutMs });
  fromFloat16(half.data as Uint16Array, bucket);
};

/**
 * Gradients of a list of parameters, bucketed and all-reduced across the ranks of `comm`.
 *
 * A step: as the backward pass produces each gradient, pass it to `gradReady(i, g)` (or write
 * it into `grads[i]` and call `gradReady(i)`); then `await synchronize()`, and step the
 * optimizer with `grads`. Every rank must mark the same gradients and call synchronize() the
 * same number of times. Inside `noSync()` gradients accumulate locally with no communication.
 * @example
 * const dp = new DataParallel(comm, params);
 * await dp.broadcastParameters();
 * for (const [i, g] of backward()) dp.gradReady(i, g);   // last layer first
 * opt.step(await dp.synchronize());
 */
export class DataParallel {
  /** The communicator the gradients are reduced over. */
  readonly comm: Communicator;
  /** `grads[i]` is the gradient of parameter i: a view into its bucket. */
  readonly grads: readonly Float32Array[];
  /** The flat buckets, in the order they are reduced. */
  readonly buckets: readonly Float32Array[];
  /** Which gradients went into which bucket. */
  readonly plan: BucketPlan;

  private readonly params: readonly Float32Source[] | null;
  private readonly average: boolean;
  private readonly hook: ReduceHook | null;
  private readonly compression: Compression | undefined;
  private readonly timeoutMs: number;
  private readonly ready: Uint8Array;       // marked in the current synchronized pass
  private readonly fresh: Uint8Array;       // the next gradReady(i, g) overwrites, not adds
  private readonly pending: number[];       // per bucket: gradients not yet ready
  private launched = 0;                      // buckets 0..launched-1 are in flight
  private inflight: Promise<void>[] = [];
  private hookTail: Promise<unknown> | null = null;   // the last hook started, until it settles
  private failure: unknown = null;
  private syncing = true;
  private synchronizing = false;

  /**
   * @param params - the parameters (Float32Arrays or float32 Tensors), or their element counts
   *   when only the gradients are wanted (broadcastParameters() then needs the arrays).
   */
  constructor(comm: Communicator, params: readonly (Float32Source | number)[],
              options: DataParallelOptions = {}) {
    const who = 'new DataParallel()';
    const opts = checkOptions(who, options, ['bucketBytes', 'average', 'reduce', 'timeoutMs',
      'compression']);
    const sizes = checkParams(who, params);
    const bucketBytes = opts.bucketBytes ?? DEFAULT_BUCKET_BYTES;
    if (typeof bucketBytes !== 'number' || !Number.isSafeInteger(bucketBytes) ||
        bucketBytes < 4) {
      throw new NodecclRangeError(`${who}: bucketBytes must be a whole number of bytes >= 4, ` +
        `got ${describeValue(bucketBytes)}`);
    }
    if (opts.reduce !== undefined && typeof opts.reduce !== 'function') {
      throw new NodecclTypeError(`${who}: reduce must be a function (bucket, info) => Promise, ` +
        `got ${describeValue(opts.reduce)}`);
    }
    this.comm = comm;
    this.params = params.every((p) => typeof p !== 'number') ?
      params as readonly Float32Source[] : null;
    this.average = opts.average ?? true;
    this.hook = opts.reduce ?? null;
    this.timeoutMs = opts.timeoutMs ?? comm.timeoutMs;
    this.compression = opts.compression;

    // One flat buffer per bucket; each gradient is a view at its slot. Buckets are shared
    // arrays where the ranks share a host (Communicator.allocShared: the all-reduce then works
    // on them in place, without staging copies), plain arrays elsewhere.
    this.plan = planBuckets(sizes, bucketBytes);
    this.buckets = this.plan.lengths.map((n) => comm.allocShared('float32', n));
    this.grads = sizes.map((n, i) => {
      const { bucket, offset } = this.plan.slots[i];
      return this.buckets[bucket].subarray(offset, offset + n);
    });
    this.ready = new Uint8Array(sizes.length);
    this.fresh = new Uint8Array(sizes.length).fill(1);
    this.pending = this.plan.members.map((m) => m.length);
  }

  /** Copies `root`'s parameters to every rank (one broadcast per parameter). */
  async broadcastParameters(root = 0): Promise<void> {
    if (this.params === null) {
      throw new NodecclTypeError(`rank ${this.comm.rank}: DataParallel.broadcastParameters(): ` +
        'this DataParallel was built from sizes; build it from the parameter arrays instead');
    }
    for (const p of this.params) await this.comm.broadcast(float32Data(p), { root });
  }

  /**
   * Marks gradient `i` as produced for this pass. With `value`, it is copied into `grads[i]`
   * (or added, when gradients were accumulated under noSync()); without, `grads[i]` is taken
   * as the caller wrote it. Outside noSync(), the gradient's bucket is all-reduced once all of
   * its gradients are ready and every earlier bucket has been started.
   */
  gradReady(i: number, value?: Float32Source): void {
    const who = `rank ${this.comm.rank}: DataParallel.gradReady(${describeValue(i)})`;
    if (!Number.isInteger(i) || i < 0 || i >= this.grads.length) {
      throw new NodecclRangeError(`${who}: index out of range; there are ` +
        `${this.grads.length} gradients (0..${this.grads.length - 1})`);
    }
    if (this.synchronizing) {
      throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `${who}: called while ` +
        'synchronize() is in flight; await it first (the buckets are being reduced)');
    }
    if (this.syncing && this.ready[i]) {
      throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `${who}: gradient ${i} was ` +
        'already marked ready in this pass; mark each gradient once between synchronize() calls');
    }
    if (value !== undefined) this.accumulate(who, i, value);
    this.fresh[i] = 0;
    if (!this.syncing) return;

    // The bucket may go once its last gradient is in, after every earlier bucket.
    this.ready[i] = 1;
    this.pending[this.plan.slots[i].bucket]--;
    this.launchReady();
  }

  /**
   * Reduces whatever is still pending and waits for every bucket. A gradient that was never
   * marked in this pass (an unused parameter) counts as zero, or as what noSync() passes
   * accumulated. Resolves to `grads`, now reduced on every rank; the next pass overwrites them.
   */
  async synchronize(): Promise<readonly Float32Array[]> {
    const who = `rank ${this.comm.rank}: DataParallel.synchronize()`;
    if (!this.syncing) {
      throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `${who}: called inside ` +
        'noSync(); synchronize after the noSync() callback has returned');
    }
    if (this.synchronizing) {
      throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `${who}: already in flight; ` +
        'await the first call');
    }
    this.synchronizing = true;
    try {
      for (let i = 0; i < this.grads.length; i++) {
        if (this.ready[i]) continue;
        if (this.fresh[i]) this.grads[i].fill(0);
        this.ready[i] = 1;
        this.pending[this.plan.slots[i].bucket]--;
      }
      this.launchReady();
      await Promise.all(this.inflight);
      if (this.failure !== null) throw this.failure;
    } finally {
      this.resetPass();
      this.synchronizing = false;
    }
    return this.grads;
  }

  /**
   * Runs `fn` (a backward pass, or several) with communication off: gradients passed to
   * gradReady() add up in `grads` until the next synchronized pass, which reduces the total
   * (gradient accumulation, as DDP's `no_sync()`). Resolves to what `fn` returns.
   */
  async noSync<T>(fn: () => T | Promise<T>): Promise<T> {
    const who = `rank ${this.comm.rank}: DataParallel.noSync()`;
    if (!this.syncing || this.synchronizing || this.ready.some((r) => r !== 0)) {
      throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `${who}: a pass is already under ` +
        'way (nested noSync(), or gradients marked since the last synchronize()); call ' +
        'noSync() between steps');
    }
    this.syncing = false;
    try {
      return await fn();
    } finally {
      this.syncing = true;
    }
  }

  // Adds (or, on the first call of a pass, copies) `value` into grads[i].
  private accumulate(who: string, i: number, value: Float32Source): void {
    const g = this.grads[i];
    const v = float32Data(value, `${who}: value`);
    if (v.length !== g.length) {
      throw new NodecclRangeError(`${who}: value has ${v.length} elements but gradient ${i} ` +
        `has ${g.length}`);
    }
    if (this.fresh[i]) {
      g.set(v);
    } else {
      for (let k = 0; k < g.length; k++) g[k] += v[k];
    }
  }

  // Starts every bucket that is complete and whose predecessors have all started, so the
  // collectives are issued in bucket order on every rank whatever order gradients arrive in.
  private launchReady(): void {
    while (this.launched < this.buckets.length && this.pending[this.launched] === 0) {
      const b = this.launched++;
      const promise = this.hook === null ? this.allReduce(b) : this.runHook(b);
      this.inflight.push(promise.then(() => undefined, (e) => {
        if (this.failure === null) this.failure = e;
      }));
    }
  }

  private allReduce(b: number): Promise<unknown> {
    return this.comm.allReduce(this.buckets[b], { op: this.average ? 'avg' : 'sum',
      timeoutMs: this.timeoutMs,
      ...(this.compression !== undefined ? { compression: this.compression } : {}) });
  }

  // Hooks run one after another, so a hook's collectives never interleave with the next one's
  // (their order would then depend on timing, and differ between ranks). A hook starts at
  // once when the previous one has finished, else as soon as it does.
  private runHook(b: number): Promise<unknown> {
    const info: BucketInfo = { index: b, comm: this.comm, average: this.average,
      timeoutMs: this.timeoutMs };
    const start = () => this.hook!(this.buckets[b], info);
    const run = this.hookTail === null ? callAsync(start) : this.hookTail.then(start);
    this.hookTail = run;
    const clear = () => { if (this.hookTail === run) this.hookTail = null; };
    run.then(clear, clear);
    return run;
  }

  private resetPass(): void {
    this.ready.fill(0);
    this.fresh.fill(1);
    this.plan.members.forEach((m, b) => { this.pending[b] = m.length; });
    this.launched = 0;
    this.inflight = [];
  }
}

// Calls fn, turning a synchronous throw into a rejection.
function callAsync(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e);
  }
}

// The element count of every parameter (a Float32Array, a float32 Tensor, or a count).
function checkParams(who: string, params: unknown): number[] {
  if (!Array.isArray(params) || params.length === 0) {
    throw new NodecclTypeError(`${who}: params must be a non-empty array of Float32Arrays, ` +
      `float32 Tensors or element counts, got ${describeValue(params)}`);
  }
  return params.map((p, i) => {
    if (typeof p === 'number') {
      if (!Number.isSafeInteger(p) || p < 0) {
        throw new NodecclRangeError(`${who}: params[${i}] is ${p}; an element count must be a ` +
          'whole number >= 0');
      }
      return p;
    }
    return float32Data(p, `${who}: params[${i}]`).length;
  });
}
