// SPDX-License-Identifier: Apache-2.0
// Loads the compiled addon (build/Release, then prebuilds/<platform>-<arch>) and types exactly
// what it exports. Every other module reaches native code through `native()`.
import { createRequire } from 'node:module';
import * as path from 'node:path';
import nodeGypBuild from 'node-gyp-build';
import { NodecclError } from './errors';

// ---- store (bindings/store.cc) ----------------------------------------------------------
export interface NativeStoreServer {
  port(): number;
  stop(): void;
}
export interface NativeStoreClient {
  /** Each method runs off the JS thread and settles its Promise there. */
  set(key: string, value: Uint8Array | string): Promise<void>;
  get(key: string, timeoutMs: number): Promise<Uint8Array>;
  add(key: string, delta: number): Promise<number>;
  wait(keys: string[], timeoutMs: number): Promise<void>;
  compareSet(key: string, expected: Uint8Array | string | null,
             desired: Uint8Array | string): Promise<Uint8Array>;
  delete(key: string): Promise<boolean>;
  close(): void;
}

// ---- communicator (bindings/comm.cc) -------------------------------------------------------
export interface NativeCommunicator {
  rank(): number;
  size(): number;
  /** The transport in use and the host index of every rank (hosts numbered by lowest rank). */
  topology(): { transport: string; hostOf: number[] };
  /** A zero-filled ArrayBuffer in this rank's shared heap, or why there is none. */
  allocShared(bytes: number): ArrayBuffer | string;
  /** Collectives: typed arrays are used in place (zero copy) until the Promise settles. */
  allReduce(data: ArrayBufferView, count: number, dtype: number, op: number,
            timeoutMs: number): Promise<void>;
  broadcast(data: ArrayBufferView, count: number, dtype: number, root: number,
            timeoutMs: number): Promise<void>;
  reduce(data: ArrayBufferView, count: number, dtype: number, op: number, root: number,
         timeoutMs: number): Promise<void>;
  allGather(input: ArrayBufferView, output: ArrayBufferView, count: number, dtype: number,
            timeoutMs: number): Promise<void>;
  reduceScatter(input: ArrayBufferView, output: ArrayBufferView, count: number, dtype: number,
                op: number, timeoutMs: number): Promise<void>;
  barrier(timeoutMs: number): Promise<void>;
  send(data: ArrayBufferView, count: number, dtype: number, peer: number,
       timeoutMs: number): Promise<void>;
  recv(data: ArrayBufferView, count: number, dtype: number, peer: number,
       timeoutMs: number): Promise<void>;
  allToAll(input: ArrayBufferView, output: ArrayBufferView, sendCounts: number[],
           recvCounts: number[], dtype: number, timeoutMs: number): Promise<void>;
  gather(input: ArrayBufferView, output: ArrayBufferView | null, count: number, dtype: number,
         root: number, timeoutMs: number): Promise<void>;
  scatter(input: ArrayBufferView | null, output: ArrayBufferView, count: number, dtype: number,
          root: number, timeoutMs: number): Promise<void>;
  batchSendRecv(sendPeers: number[], sendBufs: ArrayBufferView[], recvPeers: number[],
                recvBufs: ArrayBufferView[], timeoutMs: number): Promise<void>;
  abort(reason: string): void;
  destroy(): Promise<void>;
}

export interface NativeCommOptions {
  rank: number;
  size: number;
  storeHost: string;
  storePort: number;
  prefix: string;
  listenHost: string;
  initTimeoutMs: number;
  timeoutMs: number;
  transport: string;
  /** 'native' (default when absent) or 'mpi': collectives through MPI (bindings/mpi.cc). */
  backend?: string;
}

// ---- MPI runtime (bindings/mpi.cc) ----------------------------------------------------------
/** MPI_COMM_WORLD as MPI sees it, and the library serving it. */
export interface NativeMpiWorld {
  rank: number;
  size: number;
  /** MPI_THREAD_SERIALIZED (2) or MPI_THREAD_MULTIPLE (3). */
  threadLevel: number;
  /** What dlopen loaded (NODECCL_MPI_LIBRARY, else libmpi.so.40 ...). */
  library: string;
  /** MPI_Get_library_version, first line. */
  version: string;
}

export interface NativeMpi {
  /** Loads libmpi and calls MPI_Init_thread once per process, off the JS thread. */
  mpiInit(): Promise<NativeMpiWorld>;
  /** MPI_Bcast of a short text (< 4 KiB) from `root` of MPI_COMM_WORLD, bounded in time. */
  mpiBroadcast(text: string, root: number, timeoutMs: number): Promise<string>;
}

// ---- optimizers (bindings/optim.cc) -----------------------------------------------------------
/** What a fused step does besides the update (cpp/optim/optim.h StepControl). */
export interface NativeStepControl {
  maxGradNorm: number;
  skipNonFinite: boolean;
  threads: number;
  gradScale: number;
}

/** What a fused step found (cpp/optim/optim.h StepReport). */
export interface StepReport {
  /** L2 norm of all gradients of the call (after gradScale); -1 when not computed. */
  gradNorm: number;
  /** The factor the gradients were multiplied by (clipping and gradScale). */
  clipScale: number;
  /** True when the step was skipped for a NaN/Inf gradient (nothing was written). */
  skipped: boolean;
  /** Index of the first parameter with a NaN/Inf gradient, or -1. */
  nonFiniteParam: number;
  /** Index of its first NaN/Inf element, or -1. */
  nonFiniteIndex: number;
}

/** State of one parameter of adam8bitStep: 8-bit blockwise, or 32-bit for small tensors. */
export type NativeAdam8bitState =
  | { mCodes: Uint8Array; mAbsmax: Float32Array; vCodes: Uint8Array; vAbsmax: Float32Array }
  | { expAvg: Float32Array; expAvgSq: Float32Array };

export interface NativeOptim {
  /** Range checks of sgdStep's options; throws RangeError (ERR_NODECCL_INVALID_ARGUMENT). */
  sgdValidate(options: { lr: number; momentum: number; dampening: number; weightDecay: number;
                         nesterov: boolean }): void;
  /** Range checks of rmspropStep's options; throws RangeError (ERR_NODECCL_INVALID_ARGUMENT). */
  rmspropValidate(options: { lr: number; alpha: number; eps: number; weightDecay: number;
                             momentum: number; centered: boolean }): void;
  /** Range checks of adamStep's options; throws RangeError (ERR_NODECCL_INVALID_ARGUMENT). */
  adamValidate(options: { lr: number; beta1: number; beta2: number; eps: number;
                          weightDecay: number; amsgrad: boolean; decoupled: boolean;
                          biasCorrection: boolean }): void;
  /**
   * One fused step over every parameter, synchronous, in place. Lists match params by
   * position; a state list the options do not use may be null; steps[i] is incremented.
   * Throws TypeError (a wrong type) or RangeError (a wrong length or value), code
   * ERR_NODECCL_INVALID_ARGUMENT, before writing anything.
   */
  sgdStep(options: { lr: number; momentum: number; dampening: number; weightDecay: number;
                     nesterov: boolean },
          params: Float32Array[], grads: Float32Array[], momentumBuffers: Float32Array[] | null,
          steps: Float64Array, control?: NativeStepControl): StepReport;
  /** See sgdStep. */
  rmspropStep(options: { lr: number; alpha: number; eps: number; weightDecay: number;
                         momentum: number; centered: boolean },
              params: Float32Array[], grads: Float32Array[], squareAvgs: Float32Array[],
              momentumBuffers: Float32Array[] | null, gradAvgs: Float32Array[] | null,
              steps: Float64Array, control?: NativeStepControl): StepReport;
  /** See sgdStep. `decoupled` selects AdamW's weight decay. */
  adamStep(options: { lr: number; beta1: number; beta2: number; eps: number;
                      weightDecay: number; amsgrad: boolean; decoupled: boolean;
                      biasCorrection: boolean },
           params: Float32Array[], grads: Float32Array[], expAvgs: Float32Array[],
           expAvgSqs: Float32Array[], maxExpAvgSqs: Float32Array[] | null,
           steps: Float64Array, control?: NativeStepControl): StepReport;
  lionValidate(options: { lr: number; beta1: number; beta2: number; weightDecay: number }): void;
  lambValidate(options: { lr: number; beta1: number; beta2: number; eps: number;
                          weightDecay: number; biasCorrection: boolean }): void;
  /** See sgdStep. */
  lionStep(options: { lr: number; beta1: number; beta2: number; weightDecay: number },
           params: Float32Array[], grads: Float32Array[], expAvgs: Float32Array[],
           steps: Float64Array, control?: NativeStepControl): StepReport;
  /** See sgdStep; control.threads is ignored (one tensor at a time). */
  lambStep(options: { lr: number; beta1: number; beta2: number; eps: number;
                      weightDecay: number; biasCorrection: boolean },
           params: Float32Array[], grads: Float32Array[], expAvgs: Float32Array[],
           expAvgSqs: Float32Array[], steps: Float64Array,
           control?: NativeStepControl): StepReport;
  /** Adam/AdamW with 8-bit blockwise state (2048-element blocks); amsgrad is refused. */
  adam8bitStep(options: { lr: number; beta1: number; beta2: number; eps: number;
                          weightDecay: number; amsgrad: boolean; decoupled: boolean;
                          biasCorrection: boolean },
               params: Float32Array[], grads: Float32Array[], state: NativeAdam8bitState[],
               steps: Float64Array, control?: NativeStepControl): StepReport;
  /** The instruction set the kernels run with: 'baseline', 'avx2' or 'avx512'. */
  optimIsa(): string;
}

// ---- codecs (bindings/quant.cc) -------------------------------------------------------------
/** A codec as the binding reads it: every field present (lib/quant.ts fills defaults). */
export interface NativeCodec {
  kind: 'float16' | 'bfloat16' | 'int8' | 'int4' | 'sign1' | 'topk' | 'randomk';
  blockSize: number;
  ratio: number;
  seed: number;
}

export interface NativeQuant {
  codecEncodedBytes(codec: NativeCodec, n: number): number;
  /** Synchronous; dst must have exactly codecEncodedBytes(codec, src.length) bytes. */
  codecEncode(codec: NativeCodec, src: Float32Array, dst: Uint8Array): void;
  /** Synchronous; accumulate adds the decoded values to dst instead of replacing them. */
  codecDecode(codec: NativeCodec, src: Uint8Array, dst: Float32Array, accumulate: boolean): void;
  /** Error feedback: encodes grad + residual, leaves residual = that - decoded. */
  codecEncodeWithFeedback(codec: NativeCodec, grad: Float32Array, residual: Float64Array,
                          dst: Uint8Array, scratch: Float32Array): void;
  /** The 8-bit optimizer state's magnitude table (128 signed or 256 unsigned entries). */
  dynamicMap(signed: boolean): Float32Array;
}

// ---- losses (bindings/loss.cc) ----------------------------------------------------------------
export interface NativeLoss {
  mseLoss(pred: Float32Array, target: Float32Array, reduction: 'mean' | 'sum',
          grad: Float32Array | null): number;
  softmaxCrossEntropy(logits: Float32Array, labels: Int32Array, classes: number,
                      reduction: 'mean' | 'sum', ignoreIndex: number,
                      grad: Float32Array | null): number;
}

// ---- tensors (bindings/tensor.cc) --------------------------------------------------------------
export interface NativeTensor {
  /**
   * Synchronous whole-array conversions, round to nearest even. `dst` must have `src`'s length
   * and not overlap it; Float64Array input is rounded once (no double rounding via float32).
   */
  floatToHalf(src: Float32Array | Float64Array, dst: Uint16Array): void;
  floatToBFloat16(src: Float32Array | Float64Array, dst: Uint16Array): void;
  halfToFloat(src: Uint16Array, dst: Float32Array): void;
  bfloat16ToFloat(src: Uint16Array, dst: Float32Array): void;
  /** The core's dtype numbering and sizes (`nodeccl::DataType`), to pin lib/dtype.ts to it. */
  dtypeTable: Record<string, { code: number; size: number }>;
  /** The core's reduce-op numbering (`nodeccl::ReduceOp`). */
  reduceOpTable: Record<string, number>;
}

export interface NativeAddon extends NativeOptim, NativeQuant, NativeLoss, NativeTensor,
  NativeMpi {
  abiVersion: number;
  StoreServer: new (host: string, port: number) => NativeStoreServer;
  /** Connects off the JS thread, retrying until the server is up or the timeout passes. */
  connectStore(host: string, port: number, timeoutMs: number): Promise<NativeStoreClient>;
  /** Rendezvous runs off the JS thread; resolves when every rank is connected. */
  createCommunicator(options: NativeCommOptions): Promise<NativeCommunicator>;
  /** Throws what createCommunicator would for these options and the environment's overrides. */
  checkCommunicatorOptions(options: NativeCommOptions): void;
}

let cached: NativeAddon | undefined;

/** The package root: the folder that holds package.json (from lib/ or from dist/). */
export function packageRoot(): string {
  return path.resolve(__dirname, '..');
}

/** Loads the addon once. Throws ERR_NODECCL_LOAD listing where it looked and how to fix it. */
export function native(): NativeAddon {
  if (cached) return cached;
  const root = packageRoot();
  // NODECCL_ADDON names a .node file to load instead (a development build elsewhere).
  const override = process.env.NODECCL_ADDON;
  try {
    cached = (override ? createRequire(__filename)(path.resolve(override))
      : nodeGypBuild(root)) as NativeAddon;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    const where = override ? `NODECCL_ADDON=${override}` : `${root} (looked in build/Release, ` +
      `build/Debug and prebuilds/${process.platform}-${process.arch})`;
    throw new NodecclError('ERR_NODECCL_LOAD',
      `nodeccl: could not load the native addon from ${where}: ${why}. ` +
      'Build it with `npm run build:native` (needs cmake and a C++17 compiler), or install a ' +
      'package that ships prebuilds for this platform.');
  }
  return cached;
}
