// SPDX-License-Identifier: Apache-2.0
// Gradient compression: codecs (float16, bfloat16, int8, int4, 1-bit sign, top-k, random-k) over
// native kernels (cpp/quant), error feedback that keeps what a lossy codec could not send, and
// the compressed all-reduce behind `comm.allReduce(x, { compression })`, which sends only the
// encoded bytes.
import {
  ringBytes, ringCompressedAllReduce, type FeedbackState, type RingComm,
} from './compressed-ring';
import { fromNative, NodecclRangeError, NodecclTypeError } from './errors';
import { native, type NativeCodec } from './native';
import { checkOptions, describeValue, suggestionSuffix } from './options';
import { Tensor } from './tensor';

/** A codec's name. See {@link Codec} for each one's size and error bound. */
export type CodecKind = 'float16' | 'bfloat16' | 'int8' | 'int4' | 'sign1' | 'topk' | 'randomk';

/** A codec with its parameters; omitted fields take the kind's defaults. */
export interface CodecOptions {
  kind: CodecKind;
  /**
   * int8, int4, sign1: elements per absmax (or mean |x|) scale; 0 means one scale for the whole
   * tensor (not for int4). Defaults: int8 256, int4 64, sign1 0. sign1 needs a multiple of 8,
   * int4 an even number.
   */
  blockSize?: number;
  /** topk, randomk: fraction of elements kept, in (0, 1]. Default 0.01. */
  ratio?: number;
  /** randomk: which elements are kept (error feedback advances it every step). Default 0. */
  seed?: number;
}

/** A codec by name (its defaults) or with options. */
export type CodecLike = CodecKind | CodecOptions;

const KINDS: readonly CodecKind[] = ['float16', 'bfloat16', 'int8', 'int4', 'sign1', 'topk',
  'randomk'];
const DEFAULT_BLOCK: Record<CodecKind, number> = { float16: 0, bfloat16: 0, int8: 256, int4: 64,
  sign1: 0, topk: 0, randomk: 0 };

// Runs a native call, turning its errors into NodecclTypeError / NodecclRangeError / ...
function callNative<T>(fn: (n: ReturnType<typeof native>) => T): T {
  const n = native();
  try {
    return fn(n);
  } catch (e) {
    throw fromNative(e);
  }
}

/**
 * A lossy encoding of float32 arrays into bytes. The encoded size depends only on the codec and
 * the element count; round-trip error bounds (x' = decode(encode(x))):
 * - float16: |x - x'| <= 2^-11 |x| (normal range); finite values beyond 65504 saturate.
 * - bfloat16: <= 2^-8 |x|.
 * - int8: <= absmax(block) / 254.   int4: <= absmax(block) / 14.
 * - sign1: x' = +-mean|x| of the block: signs and the block's L1 norm kept.
 * - topk: exact on the k largest |x|, 0 elsewhere.   randomk: exact on k chosen, 0 elsewhere.
 * A block holding NaN or infinity never decodes to finite values.
 */
export class Codec {
  readonly kind: CodecKind;
  readonly blockSize: number;
  readonly ratio: number;
  readonly seed: number;
  private readonly spec: NativeCodec;

  constructor(codec: CodecLike) {
    const who = 'Codec';
    const o: CodecOptions = typeof codec === 'string' ? { kind: codec } : codec;
    if (typeof o !== 'object' || o === null) {
      throw new NodecclTypeError(`${who}: codec must be a name (${KINDS.join(', ')}) or ` +
        `{ kind, blockSize?, ratio?, seed? }, got ${describeValue(codec)}`);
    }
    checkOptions(who, o as unknown as Record<string, unknown>,
      ['kind', 'blockSize', 'ratio', 'seed']);
    if (!KINDS.includes(o.kind)) {
      throw new NodecclTypeError(`${who}: unknown codec '${String(o.kind)}'` +
        `${suggestionSuffix(String(o.kind), KINDS) || '.'} Codecs: ${KINDS.join(', ')}.`);
    }
    this.kind = o.kind;
    this.blockSize = o.blockSize ?? DEFAULT_BLOCK[o.kind];
    this.ratio = o.ratio ?? 0.01;
    this.seed = o.seed ?? 0;
    this.spec = { kind: this.kind, blockSize: this.blockSize, ratio: this.ratio,
                  seed: this.seed };
    callNative((n) => n.codecEncodedBytes(this.spec, 0));  // checks the fields
  }

  /** True for every codec here: decode(encode(x)) may differ from x. */
  get lossy(): boolean {
    return true;
  }

  /** The same codec with another seed (random-k's choice of elements). */
  withSeed(seed: number): Codec {
    return new Codec({ kind: this.kind, blockSize: this.blockSize, ratio: this.ratio, seed });
  }

  /** Bytes that encode() produces for `n` elements. */
  encodedBytes(n: number): number {
    return callNative((nat) => nat.codecEncodedBytes(this.spec, n));
  }

  /** Encodes `x` into `out` (allocated when omitted; must have encodedBytes(x.length) bytes). */
  encode(x: Float32Array, out?: Uint8Array): Uint8Array {
    const dst = out ?? new Uint8Array(this.encodedBytes(x.length));
    callNative((n) => n.codecEncode(this.spec, x, dst));
    return dst;
  }

  /**
   * Decodes `bytes` into `out` (a Float32Array of the original length, or that length to
   * allocate one). With `accumulate`, adds the decoded values to `out` instead.
   */
  decode(bytes: Uint8Array, out: Float32Array | number,
         options: { accumulate?: boolean } = {}): Float32Array {
    checkOptions('Codec.decode', options, ['accumulate']);
    const dst = typeof out === 'number' ? new Float32Array(out) : out;
    callNative((n) => n.codecDecode(this.spec, bytes, dst, options.accumulate ?? false));
    return dst;
  }

  /** @internal The plain object the binding reads. */
  native(): NativeCodec {
    return this.spec;
  }
}

/**
 * Error feedback: keeps, per tensor, what a lossy codec could not send and adds it to the next
 * gradient, so that over any number of steps
 *   (sum of decoded sends) + residual == (sum of gradients)
 * exactly (float64 residual; holds unless magnitudes differ by more than 2^29). Random-k's seed
 * advances every step, so every element is eventually sent.
 */
export class ErrorFeedback {
  readonly codec: Codec;
  private readonly residuals = new Map<unknown, FeedbackState>();
  private scratch = new Float32Array(0);

  constructor(codec: CodecLike | Codec) {
    this.codec = codec instanceof Codec ? codec : new Codec(codec);
  }

  /**
   * Encodes `grad` plus the residual kept under `key` (any value: a name, an index, the
   * gradient array itself) and updates that residual. Returns the bytes and the codec used
   * (its seed differs per step for random-k).
   */
  encode(key: unknown, grad: Float32Array, out?: Uint8Array): { bytes: Uint8Array;
                                                              codec: Codec } {
    const entry = this.state(key, grad.length);
    const codec = this.codec.kind === 'randomk'
      ? this.codec.withSeed((this.codec.seed + entry.step) % 2 ** 53) : this.codec;
    entry.step++;
    if (this.scratch.length < 2 * grad.length) this.scratch = new Float32Array(2 * grad.length);
    const bytes = out ?? new Uint8Array(codec.encodedBytes(grad.length));
    callNative((n) => n.codecEncodeWithFeedback(codec.native(), grad, entry!.residual, bytes,
      this.scratch));
    return { bytes, codec };
  }

  /**
   * @internal The state kept under `key` for an array of `n` elements (made, zeroed, when
   * missing or of another length); the reduce-scatter form updates it chunk by chunk.
   */
  state(key: unknown, n: number): FeedbackState {
    let entry = this.residuals.get(key);
    if (!entry || entry.residual.length !== n) {
      entry = { residual: new Float64Array(n), step: 0 };
      this.residuals.set(key, entry);
    }
    return entry;
  }

  /** The residual kept under `key` (float64, what is still to be sent), if any. */
  residual(key: unknown): Float64Array | undefined {
    return this.residuals.get(key)?.residual;
  }

  /** Forgets every residual (e.g. after the model is reloaded). */
  reset(): void {
    this.residuals.clear();
  }
}

/**
 * How the compressed all-reduce moves the encodings: 'allgather' (one all-gather of every rank's
 * whole encoding), 'ring' (a ring reduce-scatter of encoded chunks, re-encoded at each hop, then
 * an all-gather of the finished chunks; lib/compressed-ring.ts), or 'auto' (the one that sends
 * fewer bytes: 'allgather' for 2 ranks, 'ring' from 3 on).
 */
export type CompressionAlgorithm = 'auto' | 'allgather' | 'ring';

/**
 * The `compression` option of `allReduce`: a codec, or a codec with error feedback settings
 * and the algorithm. Error feedback is on by default: pass `errorFeedback: false` to send each
 * step's gradient alone, or your own {@link ErrorFeedback} to keep the residuals (keyed by the
 * array).
 */
export type Compression = CodecLike | Codec | {
  codec: CodecLike | Codec;
  errorFeedback?: boolean | ErrorFeedback;
  /** Default 'auto'. */
  algorithm?: CompressionAlgorithm;
};

/** The communicator surface the compressed all-reduce needs (lib/comm.ts's Communicator). */
export type GatherComm = RingComm;

const ALGORITHMS: readonly CompressionAlgorithm[] = ['auto', 'allgather', 'ring'];

// Error-feedback state per communicator and codec settings, for the default (on) case.
const feedbackByComm = new WeakMap<object, Map<string, ErrorFeedback>>();

interface Resolved {
  codec: Codec;
  feedback: ErrorFeedback | null;
  algorithm: CompressionAlgorithm;
}

function resolveCompression(comm: object, c: Compression): Resolved {
  const isWrapped = typeof c === 'object' && c !== null && !(c instanceof Codec) && 'codec' in c;
  const w = isWrapped ? c as Exclude<Compression, CodecLike | Codec> : null;
  if (w) checkOptions('allReduce: compression', w, ['codec', 'errorFeedback', 'algorithm']);
  const codec = w ? (w.codec instanceof Codec ? w.codec : new Codec(w.codec))
    : c instanceof Codec ? c : new Codec(c as CodecLike);
  const algorithm = w?.algorithm ?? 'auto';
  if (!ALGORITHMS.includes(algorithm)) {
    throw new NodecclTypeError(`allReduce: compression.algorithm must be one of ` +
      `${ALGORITHMS.join(', ')}, got ${describeValue(algorithm)}` +
      suggestionSuffix(String(algorithm), ALGORITHMS));
  }
  const ef = w ? w.errorFeedback : true;
  if (ef instanceof ErrorFeedback) return { codec: ef.codec, feedback: ef, algorithm };
  if (ef === false) return { codec, feedback: null, algorithm };
  if (ef !== undefined && ef !== true) {
    throw new NodecclTypeError(`allReduce: compression.errorFeedback must be a boolean or an ` +
      `ErrorFeedback, got ${describeValue(ef)}`);
  }
  let byKey = feedbackByComm.get(comm);
  if (!byKey) feedbackByComm.set(comm, (byKey = new Map()));
  const key = JSON.stringify(codec.native());
  let feedback = byKey.get(key);
  if (!feedback) byKey.set(key, (feedback = new ErrorFeedback(codec)));
  return { codec, feedback, algorithm };
}

/**
 * Which form `allReduce(x, { compression })` would use for `count` elements of float32 on
 * `size` ranks, and the bytes each rank sends with either. 'auto' picks the smaller; a tie
 * (2 ranks) goes to the all-gather, which takes fewer messages and encodes once.
 */
export function compressedAllReducePlan(codec: CodecLike | Codec, count: number, size: number,
                                        algorithm: CompressionAlgorithm = 'auto'):
    { algorithm: 'allgather' | 'ring'; allgatherBytes: number; ringBytes: number } {
  const c = codec instanceof Codec ? codec : new Codec(codec);
  const allgatherBytes = (size - 1) * c.encodedBytes(count);
  const ring = size > 1 ? ringBytes(c, count, size) : 0;
  const pick = algorithm !== 'auto' ? algorithm : ring < allgatherBytes ? 'ring' : 'allgather';
  return { algorithm: pick, allgatherBytes, ringBytes: ring };
}

/**
 * All-reduce of a float32 array sending only encoded bytes, in one of two forms; both leave
 * bitwise the same result on every rank, and both keep error feedback so nothing is lost.
 * - all-gather: each rank encodes its array (plus its residual), one all-gather exchanges the
 *   encodings, and every rank decodes and sums them in rank order in float32. Sums never happen
 *   in float16 (no overflow; float16 encodes saturate at 65504 and error feedback carries the
 *   rest). Each rank sends its encoding E to all: (size - 1) E bytes per rank, 1 encode and
 *   size decodes.
 * - ring (lib/compressed-ring.ts): a ring reduce-scatter of encoded chunks, decoding, adding
 *   and re-encoding at each hop, then an all-gather of the final chunks: ~2 (size - 1) / size E
 *   bytes per rank; float16 sums are scaled by a power of two agreed first.
 * For int8 (about 1 byte per element) the ring sends ~2 (size - 1) / size bytes per element
 * against the uncompressed ring's 2 (size - 1) / size x 4.
 * LIMITATION: float32 data and ops 'sum'/'avg' only: the codecs encode float32, and the min, max
 * or product of lossy encodings is not defined by error feedback.
 */
export async function compressedAllReduce<T>(comm: GatherComm, x: T, compression: Compression,
                                             op: string | undefined,
                                             timeoutMs: number | undefined): Promise<T> {
  const fn = 'allReduce';
  const data = x instanceof Tensor ? x.data : x;
  if (!(data instanceof Float32Array)) {
    throw new NodecclTypeError(`rank ${comm.rank}: ${fn} with compression needs float32 data ` +
      `(a Float32Array or float32 Tensor), got ${describeValue(data)}; LIMITATION: the codecs ` +
      'encode float32 only');
  }
  if (op !== undefined && op !== 'sum' && op !== 'avg') {
    throw new NodecclRangeError(`rank ${comm.rank}: ${fn} with compression supports op 'sum' ` +
      `or 'avg', got '${op}'; LIMITATION: min/max/prod of lossy encodings are not provided`);
  }
  const { codec, feedback, algorithm } = resolveCompression(comm, compression);
  const n = data.length;
  const plan = compressedAllReducePlan(codec, n, comm.size, algorithm);
  if (plan.algorithm === 'ring') {
    await ringForm(comm, data, codec, feedback, timeoutMs);
  } else {
    await allGatherForm(comm, data, codec, feedback, timeoutMs);
  }
  if (op === 'avg') {
    const inv = 1 / comm.size;
    for (let i = 0; i < n; i++) data[i] *= inv;
  }
  return x;
}

// Encode (with the residual), gather every rank's bytes, decode-accumulate in rank order.
async function allGatherForm(comm: GatherComm, data: Float32Array, codec: Codec,
                             feedback: ErrorFeedback | null,
                             timeoutMs: number | undefined): Promise<void> {
  const encoded = feedback ? feedback.encode(data, data) : { bytes: codec.encode(data), codec };
  const size = encoded.bytes.length;
  const all = new Uint8Array(size * comm.size);
  await comm.allGather(encoded.bytes, all, timeoutMs === undefined ? {} : { timeoutMs });
  data.fill(0);
  for (let r = 0; r < comm.size; r++) {
    encoded.codec.decode(all.subarray(r * size, (r + 1) * size), data, { accumulate: true });
  }
}

// The ring form, with random-k's seed varied per call (as ErrorFeedback.encode does) and per
// chunk; the seed travels in random-k's bytes, so decoders need not know it.
async function ringForm(comm: GatherComm, data: Float32Array, codec: Codec,
                        feedback: ErrorFeedback | null,
                        timeoutMs: number | undefined): Promise<void> {
  const state = feedback ? feedback.state(data, data.length) : null;
  const step = state ? state.step++ : 0;
  const seeded: Codec[] = [];
  const codecAt = codec.kind !== 'randomk' ? () => codec
    : (c: number) => (seeded[c] ??= codec.withSeed((codec.seed + step * comm.size + c) % 2 ** 53));
  await ringCompressedAllReduce(comm, data, codecAt, state, timeoutMs);
}

