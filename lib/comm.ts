// SPDX-License-Identifier: Apache-2.0
// The Communicator: typed, Promise-returning collectives over the native communicator. Every
// method checks its arguments here (so errors name the JS argument), then queues the work on the
// communicator's native worker thread; operations run in the order they were called.
//
// The small collectives (allReduce, broadcast, allGather, reduceScatter, barrier) are plain
// functions returning the native Promise chained once with .then, not async functions awaiting
// an async helper: a tiny collective over shared memory completes in about a microsecond
// (bindings/comm.cc), so each extra Promise and async frame shows (bench/latency.js). Every
// check still runs, and every throw still becomes a rejection, as in an async function.
import { checkBuffer, checkTensorLength } from './buffers';
import {
  arrayConstructor, checkDType, DTYPE_CODES, dtypeSize, inferDType, REDUCE_OP_CODES, type DType,
  type DTypeArrayMap, type ReduceOpName,
} from './dtype';
import { fromNative, NodecclError, NodecclRangeError, NodecclTypeError } from './errors';
import { log } from './log';
import { type Backend, noteMpiComm } from './mpi';
import { native, type NativeCommunicator } from './native';
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

/** Options of allToAll: per-peer element counts (default: an even split of the input). */
export interface AllToAllOptions extends CollectiveOptions {
  /** Elements this rank sends to each rank, in rank order (size entries). */
  sendCounts?: number[];
  /**
   * Elements this rank receives from each rank. Default: equal to sendCounts for an even
   * split; for uneven sendCounts the ranks exchange their counts first (one small all-to-all).
   */
  recvCounts?: number[];
}

/** One message of a batched sendRecv. */
export interface SendSpec { peer: number; send: TensorLike }
export interface RecvSpec<T extends TensorLike = TensorLike> { peer: number; recv: T }

/** Where the job's store is and how this communicator was made; kept for split() and group(). */
export interface CommWorld {
  storeHost: string;
  storePort: number;
  /** The store namespace of this communicator's keys ('nodeccl/world' for init's). */
  prefix: string;
  listenHost: string;
  transport: string;
  /** 'mpi' when init() chose NODECCL_BACKEND=mpi; sub-communicators are always 'native'. */
  backend?: Backend;
}

// Allowed option keys, built once rather than per call.
const REDUCE_KEYS = ['op', 'timeoutMs', 'compression'] as const;
const OP_KEYS = ['op', 'timeoutMs'] as const;
const ROOT_KEYS = ['root', 'timeoutMs'] as const;
const TIMEOUT_KEYS = ['timeoutMs'] as const;

/** Native errors become nodeccl's typed errors (the rejection handler of every collective). */
function rethrowNative(e: unknown): never {
  throw fromNative(e);
}

// LIMITATION: collectives take no SharedArrayBuffer memory: the binding reaches a TypedArray's
// memory through its ArrayBuffer, which N-API does not hand out for a SharedArrayBuffer, and
// other threads writing it during a collective would give ranks different results.
function checkNotShared(fn: string, what: string, x: ArrayBufferView): void {
  if (typeof SharedArrayBuffer !== 'undefined' && x.buffer instanceof SharedArrayBuffer) {
    throw new NodecclTypeError(`${fn}: ${what} is a ${x.constructor.name} over a ` +
      'SharedArrayBuffer, which collectives do not take; copy it into an ordinary array ' +
      `first, e.g. new ${x.constructor.name}(${what})`);
  }
}

/** Resolves a Tensor or TypedArray argument to its array, dtype and element count. */
function view(fn: string, what: string, x: unknown): View {
  if (x instanceof Tensor) {
    checkBuffer(fn, what, x.data);
    checkNotShared(fn, what, x.data);
    const expected = x.shape.reduce((a, d) => a * d, 1);
    checkTensorLength(fn, what, x.data.length, x.shape, expected);
    return { data: x.data as View['data'], dtype: x.dtype, count: x.size };
  }
  if (ArrayBuffer.isView(x) && !(x instanceof DataView)) {
    checkBuffer(fn, what, x);
    checkNotShared(fn, what, x);
    const dtype = inferDType(x as never, `${fn}: ${what}`);
    return { data: x as View['data'], dtype, count: (x as unknown as { length: number }).length };
  }
  throw new NodecclTypeError(`${fn}: ${what} must be a Tensor or a TypedArray, got ` +
    describeValue(x));
}

// Ranks ("host:port#rank") whose init() communicator is alive in this process: a second init()
// of the same rank of the same job would claim that rank again, and its failure would end the
// first communicator.
const liveJobs = new Set<string>();

/** Whether init() already made rank `rank` of the job whose store is host:port, still alive. */
export function jobAlive(host: string, port: number, rank: number): boolean {
  return liveJobs.has(`${host}:${port}#${rank}`);
}

/** A group of `size` processes that communicate; created by `init()`. */
export class Communicator {
  /** This process's rank, 0..size-1. */
  readonly rank: number;
  /** The number of ranks. */
  readonly size: number;
  /** Default per-operation timeout in milliseconds. */
  readonly timeoutMs: number;
  /** What carries the collectives: 'native' transports, or 'mpi' (NODECCL_BACKEND=mpi). */
  get backend(): Backend {
    return this.world?.backend ?? 'native';
  }
  /** A client of the job's key-value store, free for the application's own keys. */
  readonly store: Store;
  /**
   * The transport chosen at init: 'shm' (every rank on this host), 'tcp', 'shm+tcp' (shared
   * memory with this host's ranks, TCP to other hosts), or 'none' (a world of one).
   */
  readonly transport: string;
  /** The host of every rank, as an index: hosts are numbered in the order of their lowest rank. */
  readonly hostOf: readonly number[];

  // The ArrayBuffers allocShared() handed out (weakly held: they free their memory when
  // collected).
  private readonly sharedBuffers = new WeakSet<ArrayBuffer>();
  private destroyed = false;
  private failed = false;  // an operation failed (not for its arguments): peers may be gone
  // split() and group() calls so far: every rank counts the same, naming each child uniquely.
  private splits = 0;

  /**
   * @internal Use `init()`, `split()` or `group()`. `ownsStore` is false for sub-communicators,
   * which share their parent's store client.
   */
  constructor(private readonly nativeComm: NativeCommunicator, store: Store,
              private readonly server: StoreServer | null, timeoutMs: number,
              private readonly world: CommWorld | null = null,
              private readonly ownsStore = true) {
    this.rank = nativeComm.rank();
    this.size = nativeComm.size();
    if (this.backend === 'mpi') noteMpiComm(1);
    if (ownsStore && world !== null && this.size > 1) {
      liveJobs.add(`${world.storeHost}:${world.storePort}#${this.rank}`);
    }
    const topo = nativeComm.topology();
    this.transport = topo.transport;
    this.hostOf = Object.freeze(topo.hostOf.slice());
    this.store = store;
    this.timeoutMs = timeoutMs;
  }

  /**
   * Splits this communicator into disjoint sub-communicators, MPI_Comm_split style: ranks that
   * pass the same `color` (a non-negative integer) form one, ordered by `key` (default: this
   * rank), ties broken by rank here. A `color` of null or -1 joins none and resolves to null.
   * Collective: every rank of this communicator must call it, in the same order as its other
   * collectives. The child has its own ranks, every collective, and destroy(); destroy it
   * before this one.
   */
  async split(color: number | null, key: number = this.rank,
              options: CollectiveOptions = {}): Promise<Communicator | null> {
    const fn = 'split';
    checkOptions(fn, options, ['timeoutMs']);
    this.live(fn);
    const c = color === null ? -1 : color;
    if (typeof c !== 'number' || !Number.isInteger(c) || c < -1 || c > 0x7fffffff) {
      throw new NodecclRangeError(`rank ${this.rank}: split color ${describeValue(color)} must ` +
        'be a non-negative integer (or null / -1 for no group)');
    }
    if (typeof key !== 'number' || !Number.isInteger(key) || Math.abs(key) > 0x7fffffff) {
      throw new NodecclRangeError(`rank ${this.rank}: split key ${describeValue(key)} must be ` +
        'a 32-bit integer');
    }
    return this.splitWith(fn, c, key, 0, options);
  }

  /**
   * A sub-communicator of the listed ranks of this one, numbered in list order (ranks[i]
   * becomes rank i); resolves to null on ranks not listed. Collective: every rank must call it
   * with the same list (checked: a different list fails on every rank).
   */
  async group(ranks: number[], options: CollectiveOptions = {}): Promise<Communicator | null> {
    const fn = 'group';
    checkOptions(fn, options, ['timeoutMs']);
    this.live(fn);
    if (!Array.isArray(ranks) || ranks.length === 0) {
      throw new NodecclTypeError(`rank ${this.rank}: group ranks must be a non-empty array of ` +
        `ranks, got ${describeValue(ranks)}`);
    }
    const seen = new Set<number>();
    for (const r of ranks) {
      this.peer(fn, 'ranks entry', r, true);
      if (seen.has(r)) {
        throw new NodecclRangeError(`rank ${this.rank}: group ranks list rank ${r} twice; ` +
          'list each rank once');
      }
      seen.add(r);
    }
    // A checksum of the list, so that ranks passing different lists fail instead of hanging.
    let h = 17;
    for (const r of ranks) h = (Math.imul(h, 31) + r + 1) | 0;
    const i = ranks.indexOf(this.rank);
    return this.splitWith(fn, i < 0 ? -1 : 0, i, h, options);
  }

  private async splitWith(fn: string, color: number, key: number, check: number,
                          options: CollectiveOptions): Promise<Communicator | null> {
    if (!this.world) {
      throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `rank ${this.rank}: ${fn} needs a ` +
        'communicator made by init() (this one has no store address)');
    }
    const n = ++this.splits;
    const all = await this.allGather(new Int32Array([color, key, check]), undefined, options);
    for (let r = 0; r < this.size; r++) {
      if (all[3 * r + 2] !== check) {
        throw new NodecclRangeError(`rank ${this.rank}: ${fn} #${n}: rank ${r} passed a ` +
          `different ranks list than this rank; every rank must pass the same list`);
      }
    }
    if (color < 0) return null;
    const members: number[] = [];
    for (let r = 0; r < this.size; r++) if (all[3 * r] === color) members.push(r);
    members.sort((a, b) => (all[3 * a + 1] - all[3 * b + 1]) || (a - b));
    const w = this.world;
    const prefix = `${w.prefix}/${fn}${n}/c${color}`;
    // MPI runs MPI_COMM_WORLD only (backend/mpi/): a sub-communicator uses the native transports.
    if (w.backend === 'mpi') {
      log('info', 'init', this.rank, this.size, () => `${fn} #${n} under NODECCL_BACKEND=mpi: ` +
        'the sub-communicator uses the native transports');
    }
    const nativeComm = await native().createCommunicator({
      rank: members.indexOf(this.rank),
      size: members.length,
      storeHost: w.storeHost,
      storePort: w.storePort,
      prefix,
      listenHost: w.listenHost,
      initTimeoutMs: this.timeout(fn, options),
      timeoutMs: this.timeoutMs,
      transport: w.transport,
    }).catch((e: unknown) => { throw fromNative(e); });
    return new Communicator(nativeComm, this.store, null, this.timeoutMs,
      { ...w, prefix, backend: 'native' }, false);
  }

  /**
   * Reduces `x` across all ranks in place; every rank ends with the same result (bitwise).
   * float16/bfloat16 accumulate in float32 and round once. Resolves to `x`.
   */
  allReduce<T extends TensorLike>(x: T, options: ReduceOptions = {}): Promise<T> {
    const fn = 'allReduce';
    try {
      checkOptions(fn, options, REDUCE_KEYS);
      if (options.compression !== undefined) {
        return compressedAllReduce(this, x, options.compression, options.op, options.timeoutMs);
      }
      const v = view(fn, 'tensor', x);
      const op = this.op(fn, options.op);
      this.live(fn);
      const timeout = this.timeout(fn, options);
      return this.nativeComm.allReduce(v.data, v.count, DTYPE_CODES[v.dtype], op, timeout)
        .then(() => x, rethrowNative);
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
  }

  /** Copies `root`'s `x` into `x` on every rank. Resolves to `x`. */
  broadcast<T extends TensorLike>(x: T, options: RootOptions = {}): Promise<T> {
    const fn = 'broadcast';
    try {
      checkOptions(fn, options, ROOT_KEYS);
      const v = view(fn, 'tensor', x);
      const root = this.peer(fn, 'root', options.root ?? 0, true);
      this.live(fn);
      const timeout = this.timeout(fn, options);
      return this.nativeComm.broadcast(v.data, v.count, DTYPE_CODES[v.dtype], root, timeout)
        .then(() => x, rethrowNative);
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
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
  allGather<T extends TensorLike>(input: T, output?: T, options: CollectiveOptions = {}):
      Promise<T> {
    const fn = 'allGather';
    try {
      checkOptions(fn, options, TIMEOUT_KEYS);
      const vin = view(fn, 'input', input);
      const out = output ?? this.allocate(input, vin.count * this.size, [this.size]);
      const vout = view(fn, 'output', out);
      this.sameDType(fn, vin, vout);
      if (vout.count !== vin.count * this.size) {
        throw new NodecclRangeError(`rank ${this.rank}: allGather output has ${vout.count} ` +
          `elements but needs ${vin.count * this.size} (input ${vin.count} × ${this.size} ` +
          'ranks)');
      }
      this.live(fn);
      const timeout = this.timeout(fn, options);
      return this.nativeComm.allGather(vin.data, vout.data, vin.count, DTYPE_CODES[vin.dtype],
        timeout).then(() => out, rethrowNative);
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
  }

  /**
   * Reduces `input` (size × n elements) across ranks and leaves block `rank` of the result in
   * `output` (n elements; allocated when omitted). `input` is unchanged. Resolves to output.
   */
  reduceScatter<T extends TensorLike>(input: T, output?: T, options: ReduceOptions = {}):
      Promise<T> {
    const fn = 'reduceScatter';
    try {
      checkOptions(fn, options, OP_KEYS);
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
        throw new NodecclRangeError(`rank ${this.rank}: reduceScatter output has ` +
          `${vout.count} elements but needs ${n} (input ${vin.count} / ${this.size} ranks)`);
      }
      const op = this.op(fn, options.op);
      this.live(fn);
      const timeout = this.timeout(fn, options);
      return this.nativeComm.reduceScatter(vin.data, vout.data, n, DTYPE_CODES[vin.dtype], op,
        timeout).then(() => out, rethrowNative);
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
  }

  /** Resolves once every rank has called barrier(). */
  barrier(options: CollectiveOptions = {}): Promise<void> {
    const fn = 'barrier';
    try {
      checkOptions(fn, options, TIMEOUT_KEYS);
      this.live(fn);
      const timeout = this.timeout(fn, options);
      return this.nativeComm.barrier(timeout).then(undefined, rethrowNative);
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
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
   * All-to-all: sends block p of `input` to rank p and receives rank p's block for this rank
   * into block p of `output`. Even split by default (input length a multiple of size); uneven
   * with `sendCounts` (and `recvCounts`, else exchanged first). `output` is allocated when
   * omitted. Resolves to it.
   */
  async allToAll<T extends TensorLike>(input: T, output?: T, options: AllToAllOptions = {}):
      Promise<T> {
    const fn = 'allToAll';
    checkOptions(fn, options, ['sendCounts', 'recvCounts', 'timeoutMs']);
    const vin = view(fn, 'input', input);
    const timeout = this.timeout(fn, options);
    let sendCounts = options.sendCounts;
    let recvCounts = options.recvCounts;
    if (sendCounts === undefined) {
      if (vin.count % this.size !== 0) {
        throw new NodecclRangeError(`rank ${this.rank}: allToAll input has ${vin.count} ` +
          `elements, not a multiple of the ${this.size} ranks; pad it, or pass sendCounts`);
      }
      sendCounts = new Array<number>(this.size).fill(vin.count / this.size);
      recvCounts ??= sendCounts;
    }
    this.counts(fn, 'sendCounts', sendCounts);
    const sent = sendCounts.reduce((a, b) => a + b, 0);
    if (sent !== vin.count) {
      throw new NodecclRangeError(`rank ${this.rank}: allToAll sendCounts sum to ${sent} but ` +
        `input has ${vin.count} elements; make them agree`);
    }
    if (recvCounts === undefined) {
      // Each rank tells each other how much it will send: one element per pair.
      const got = new Float64Array(this.size);
      await this.run(fn, () => this.nativeComm.allToAll(Float64Array.from(sendCounts!), got,
        new Array(this.size).fill(1), new Array(this.size).fill(1), DTYPE_CODES.float64,
        timeout));
      recvCounts = Array.from(got);
    }
    this.counts(fn, 'recvCounts', recvCounts);
    const total = recvCounts.reduce((a, b) => a + b, 0);
    const out = output ?? this.allocate(input, total, null);
    const vout = view(fn, 'output', out);
    this.sameDType(fn, vin, vout);
    if (vout.count !== total) {
      throw new NodecclRangeError(`rank ${this.rank}: allToAll output has ${vout.count} ` +
        `elements but recvCounts sum to ${total}; pass an output of ${total} elements`);
    }
    const rc = recvCounts;
    await this.run(fn, () => this.nativeComm.allToAll(vin.data, vout.data, sendCounts!, rc,
      DTYPE_CODES[vin.dtype], timeout));
    return out;
  }

  /**
   * Gathers every rank's `input` into the root's `output` in rank order (size × input length;
   * allocated when omitted). Resolves to the output on the root and to null elsewhere.
   */
  async gather<T extends TensorLike>(input: T, output?: T | null, options: RootOptions = {}):
      Promise<T | null> {
    const fn = 'gather';
    checkOptions(fn, options, ['root', 'timeoutMs']);
    const vin = view(fn, 'input', input);
    const root = this.peer(fn, 'root', options.root ?? 0, true);
    let out: T | null = null;
    let vout: View | null = null;
    if (this.rank === root) {
      this.rootOnly(fn, () => {
        out = output ?? this.allocate(input, vin.count * this.size, [this.size]);
        vout = view(fn, 'output', out);
        this.sameDType(fn, vin, vout);
        if (vout.count !== vin.count * this.size) {
          throw new NodecclRangeError(`rank ${this.rank}: gather output has ${vout.count} ` +
            `elements but needs ${vin.count * this.size} (input ${vin.count} × ${this.size} ` +
            'ranks)');
        }
      });
    }
    await this.run(fn, () => this.nativeComm.gather(vin.data, vout ? vout.data : null,
      vin.count, DTYPE_CODES[vin.dtype], root, this.timeout(fn, options)));
    return out;
  }

  /**
   * Sends block r of the root's `input` (size × output length; ignored elsewhere, may be null)
   * to rank r's `output`. Resolves to `output`.
   */
  async scatter<T extends TensorLike>(input: T | null, output: T, options: RootOptions = {}):
      Promise<T> {
    const fn = 'scatter';
    checkOptions(fn, options, ['root', 'timeoutMs']);
    const vout = view(fn, 'output', output);
    const root = this.peer(fn, 'root', options.root ?? 0, true);
    let vin: View | null = null;
    if (this.rank === root) {
      this.rootOnly(fn, () => {
        vin = view(fn, 'input', input);
        this.sameDType(fn, vin!, vout);
        if (vin!.count !== vout.count * this.size) {
          throw new NodecclRangeError(`rank ${this.rank}: scatter input has ${vin!.count} ` +
            `elements but needs ${vout.count * this.size} (output ${vout.count} × ${this.size} ` +
            'ranks)');
        }
      });
    }
    await this.run(fn, () => this.nativeComm.scatter(vin ? vin.data : null, vout.data,
      vout.count, DTYPE_CODES[vout.dtype], root, this.timeout(fn, options)));
    return output;
  }

  /**
   * Several sends and receives at once, with any peers (this rank included) and in any order,
   * without deadlock: the messages between two ranks match in list order, and each receive
   * must have the byte length of its send. The peer must use sendRecv() too (a plain recv()
   * checks a dtype and count that batched messages do not carry).
   * Resolves to the receive tensors.
   */
  async sendRecv<T extends TensorLike>(sends: SendSpec[], recvs: RecvSpec<T>[],
                                       options: CollectiveOptions = {}): Promise<T[]> {
    const fn = 'sendRecv';
    checkOptions(fn, options, ['timeoutMs']);
    const list = <S>(what: string, xs: S[], get: (x: S) => unknown) => {
      if (!Array.isArray(xs)) {
        throw new NodecclTypeError(`rank ${this.rank}: ${fn} ${what} must be an array of ` +
          `{ peer, ${what === 'sends' ? 'send' : 'recv'} }, got ${describeValue(xs)}`);
      }
      const peers: number[] = [];
      const bufs: ArrayBufferView[] = [];
      xs.forEach((x, i) => {
        if (typeof x !== 'object' || x === null) {
          throw new NodecclTypeError(`rank ${this.rank}: ${fn} ${what}[${i}] must be an ` +
            `object, got ${describeValue(x)}`);
        }
        const peer = (x as unknown as { peer: unknown }).peer;
        peers.push(this.peer(fn, `${what}[${i}].peer`, peer, true));
        bufs.push(view(fn, `${what}[${i}]`, get(x)).data);
      });
      return { peers, bufs };
    };
    const s = list('sends', sends, (x) => x.send);
    const r = list('recvs', recvs, (x) => x.recv);
    await this.run(fn, () => this.nativeComm.batchSendRecv(s.peers, s.bufs, r.peers, r.bufs,
      this.timeout(fn, options)));
    return recvs.map((x) => x.recv);
  }

  /**
   * A zero-filled array of `count` elements of `dtype` in this rank's shared heap: memory that
   * every rank on this host has mapped, so collectives read and write it in place instead of
   * staging it through shared memory (NCCL users know this as registered or symmetric
   * memory). An all-reduce in place on shared arrays on every rank moves about 2 S bytes of
   * memory per rank instead of 4.5 S; it is the fastest way to all-reduce large tensors here.
   * Any other use of the array is a plain TypedArray; subarrays of it count as shared too.
   *
   * Where no shared heap exists (a transport other than 'shm', a world of one, /dev/shm full
   * or too small), it returns an ordinary array instead, logged at NODECCL_DEBUG=info, unless
   * `required` is set, when it throws saying why. `isShared()` tells which one you got.
   *
   * LIMITATION: an all-reduce that fails on shared arrays may leave partial results in them,
   * because peers write into them before the call's last exchange; and a broadcast,
   * all-gather or reduce-scatter that read shared arrays and then failed may have overwritten
   * its output, even a plain one. The error message says so in both cases; refill the array
   * before using it again. A failed call whose arrays are all plain leaves them as they were.
   * The array stays valid after destroy(); its memory is freed when it is garbage-collected.
   */
  allocShared<D extends DType>(dtype: D, count: number,
                               options: { required?: boolean } = {}): DTypeArrayMap[D] {
    checkOptions('allocShared()', options, ['required']);
    checkDType('allocShared()', dtype);
    if (!Number.isSafeInteger(count) || count < 0) {
      throw new NodecclRangeError(`rank ${this.rank}: allocShared() count ` +
        `${describeValue(count)} must be a non-negative integer`);
    }
    const Ctor = arrayConstructor(dtype) as unknown as new (b: ArrayBuffer, o: number,
                                                            n: number) => DTypeArrayMap[D];
    const got = this.destroyed ? 'the communicator was destroyed'
                               : this.nativeComm.allocShared(count * dtypeSize(dtype));
    if (typeof got !== 'string') {
      this.sharedBuffers.add(got);
      return new Ctor(got, 0, count);
    }
    if (options.required) {
      throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `rank ${this.rank}: allocShared(` +
        `'${dtype}', ${count}) has no shared memory: ${got}; drop { required: true } to get a ` +
        'plain array instead');
    }
    log('info', 'comm', this.rank, this.size, () => `allocShared('${dtype}', ${count}): ` +
      `a plain array instead: ${got}`);
    let plain: ArrayBuffer;
    try {
      plain = new ArrayBuffer(count * dtypeSize(dtype));
    } catch (e) {
      throw new NodecclRangeError(`rank ${this.rank}: allocShared('${dtype}', ${count}) has no ` +
        `shared memory (${got}) and the plain array it falls back to cannot be allocated ` +
        `either (${e instanceof Error ? e.message : String(e)}); pass a smaller count`);
    }
    return new Ctor(plain, 0, count);
  }

  /**
   * Whether `array` (a TypedArray or Tensor) lies in memory from this communicator's
   * `allocShared()`; another communicator's shared arrays are plain arrays to this one.
   */
  isShared(array: TensorLike | ArrayBufferView): boolean {
    const data = array instanceof Tensor ? array.data : array;
    return ArrayBuffer.isView(data) && this.sharedBuffers.has(data.buffer as ArrayBuffer);
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
      await this.leaveStore();
      if (this.ownsStore && this.world !== null) {
        liveJobs.delete(`${this.world.storeHost}:${this.world.storePort}#${this.rank}`);
      }
      if (this.ownsStore) this.store.close();
      this.server?.stop();
      if (this.backend === 'mpi') noteMpiComm(-1);
    }
  }

  // Rank 0's process serves the job's store: stopping it while another rank is still finishing
  // init() or its own destroy() would fail that rank. So every rank of init's communicator says
  // that it has left, and rank 0 keeps the store up until all have: bounded by 5 s (a rank may
  // exit without destroy()), and by 0.5 s once the communicator has failed (ranks may be dead).
  private async leaveStore(): Promise<void> {
    if (!this.ownsStore || this.world === null || this.size === 1) return;
    const key = (r: number) => `${this.world!.prefix}/left/${r}`;
    try {
      if (this.server === null) {
        await this.store.set(key(this.rank), '1');
        return;
      }
      const others = Array.from({ length: this.size }, (_, r) => r).filter((r) => r !== this.rank);
      await this.store.wait(others.map(key), { timeoutMs: this.failed ? 500 : 5000 });
    } catch {
      // The store is gone, or some rank never came to leave: nothing more to wait for.
    }
  }

  // ---- helpers ----------------------------------------------------------------------------

  private async run(fn: string, start: () => Promise<void>): Promise<void> {
    this.live(fn);
    try {
      await start();
    } catch (e) {
      const err = fromNative(e);
      if ((err as { code?: string }).code !== 'ERR_NODECCL_INVALID_ARGUMENT') this.failed = true;
      throw err;
    }
  }

  // Checks of arguments that only the root passes (a gather's output, a scatter's input): the
  // other ranks cannot see them fail and would wait in the collective until their timeout.
  // So a failed check also aborts the communicator, failing them at once with its message.
  private rootOnly(fn: string, check: () => void): void {
    try {
      check();
    } catch (e) {
      if (this.size > 1 && !this.destroyed) {
        const why = e instanceof Error ? e.message : String(e);
        this.abort(`${fn}: the root's arguments were rejected (${why}); the other ranks ` +
          'cannot check them, so the communicator is aborted');
      }
      throw e;
    }
  }

  /** Throws unless this communicator may still be used (checked after the arguments). */
  private live(fn: string): void {
    if (this.destroyed) {
      throw new NodecclError('ERR_NODECCL_DESTROYED', `rank ${this.rank}: ${fn} called on a ` +
        'destroyed communicator; create a new one with init()');
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

  private counts(fn: string, what: string, xs: unknown): void {
    if (!Array.isArray(xs) || xs.length !== this.size) {
      throw new NodecclRangeError(`rank ${this.rank}: ${fn} ${what} must be an array of ` +
        `${this.size} non-negative integers (one per rank), got ${describeValue(xs)}`);
    }
    const bad = xs.findIndex((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 0);
    if (bad >= 0) {
      throw new NodecclRangeError(`rank ${this.rank}: ${fn} ${what}[${bad}] is ` +
        `${describeValue(xs[bad])}; every entry must be a non-negative integer element count`);
    }
  }

  private timeout(fn: string, options: CollectiveOptions): number {
    const t = options.timeoutMs ?? this.timeoutMs;
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0 || t > 1e12) {
      throw new NodecclRangeError(`rank ${this.rank}: ${fn} timeoutMs must be a positive ` +
        `number of milliseconds up to 1e12 (about 31 years), got ${describeValue(t)}`);
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
