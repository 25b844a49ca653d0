// SPDX-License-Identifier: Apache-2.0
// The reduce-scatter form of the compressed all-reduce: a ring reduce-scatter that passes encoded
// partial sums (decode, add this rank's part, re-encode with error feedback at every hop), then
// one all-gather of the finished encoded chunks, which every rank decodes alike.
//
// Cost, for n ranks and a float32 array whose whole encoding takes E bytes (E_c for chunk c):
//   ring reduce-scatter   n - 1 steps; each rank sends n - 1 chunk encodings, ~(n - 1) / n E
//   all-gather            each rank receives n - 1 final chunk encodings (padded to the largest
//                         one, a few bytes more), ~(n - 1) / n E
//   total                 ~2 (n - 1) / n E bytes per rank, 2 (n - 1) messages, and n encodes and
//                         n decodes of 1/n of the array (O(size) work, as one encode plus one
//                         decode of the whole array); float16 adds one 4-byte max all-reduce.
// The all-gather form (lib/quant.ts) moves (n - 1) E per rank instead, so it is chosen for n = 2
// (where the two are equal) and this one from n = 3 on.
//
// Chunks: chunk c holds elements [floor(c N / n), floor((c + 1) N / n)), so sizes differ by at
// most one and may be 0 when N < n. Rank r owns chunk r: at step s it sends chunk r - s - 1 and
// receives chunk r - s - 2 (mod n) from rank r - 1, so the chunk it receives at step n - 2 is its
// own, summed over every other rank.
//
// Error feedback: each rank encodes each chunk exactly once per call (its hop in the ring, or,
// for its own chunk, the final encoding), so one float64 residual per element (the same array
// the all-gather form keeps per tensor) holds everything a rank failed to send:
//   input  = residual + decoded partial sum received + this rank's values   (float64)
//   send   = encode(float32(input));  residual = input - decode(send)
// Summed over ranks this telescopes: final decoded result + sum of the ranks' residuals = sum of
// the raw inputs + sum of the residuals before the call, exactly (up to float64 rounding).
//
// float16 overflow: a partial sum of k ranks may exceed 65504 even when each rank's values do
// not. The ranks first agree (max all-reduce) on a bound M >= |input| of every rank, then
// multiply by a power of two p with n M p <= 32752 before encoding (small gradients are scaled
// up, out of float16's subnormal range) and divide the result by p. Powers of two make both
// exact. bfloat16 and the scaled codecs (int8, int4, sign1) have float32's range: no scaling.
import { NodecclRangeError } from './errors';
import { native } from './native';
import type { Codec } from './quant';

/** What the reduce-scatter form needs of a communicator (lib/comm.ts's Communicator has it). */
export interface RingComm {
  readonly rank: number;
  readonly size: number;
  sendRecv(sends: { peer: number; send: Uint8Array }[],
           recvs: { peer: number; recv: Uint8Array }[],
           options?: { timeoutMs?: number }): Promise<unknown>;
  allGather(input: Uint8Array, output: Uint8Array,
            options?: { timeoutMs?: number }): Promise<unknown>;
  allReduce(x: Float32Array, options?: { op?: 'max'; timeoutMs?: number }): Promise<unknown>;
}

/** Error-feedback state of one tensor: float64 residual per element, and calls so far. */
export interface FeedbackState {
  residual: Float64Array;
  step: number;
}

/** [begin, end) of chunk c when `count` elements are split over `size` ranks. */
export function chunkBounds(count: number, size: number, c: number): [number, number] {
  return [Math.floor((c * count) / size), Math.floor(((c + 1) * count) / size)];
}

/**
 * Bytes one rank sends in the reduce-scatter form for `count` elements: its n - 1 ring hops
 * plus its share of the all-gather (padded chunk encodings). Used to choose the form.
 */
export function ringBytes(codec: Codec, count: number, size: number, rank = 0): number {
  let hops = 0;
  let largest = 0;
  for (let c = 0; c < size; c++) {
    const [lo, hi] = chunkBounds(count, size, c);
    const b = codec.encodedBytes(hi - lo);
    largest = Math.max(largest, b);
    if (c !== rank) hops += b;
  }
  return hops + (size - 1) * largest;
}

let scratch = new Float32Array(0);

// Encodes chunk values `x` (+ the decoded partial sum `partial`, + the chunk's residual when
// feedback is on) into fresh bytes, updating the residual.
function encodeChunk(codec: Codec, x: Float32Array, partial: Float32Array | null,
                     residual: Float64Array | null): Uint8Array {
  const out = new Uint8Array(codec.encodedBytes(x.length));
  if (residual) {
    if (partial) for (let i = 0; i < x.length; i++) residual[i] += partial[i];
    if (scratch.length < 2 * x.length) scratch = new Float32Array(2 * x.length);
    native().codecEncodeWithFeedback(codec.native(), x, residual, out, scratch);
    return out;
  }
  if (!partial) return codec.encode(x, out);
  for (let i = 0; i < x.length; i++) partial[i] += x[i];
  return codec.encode(partial, out);
}

// The power of two that keeps n partial sums of float16 inputs within range (see the header).
async function float16Scale(comm: RingComm, data: Float32Array, residual: Float64Array | null,
                            timeout: { timeoutMs?: number }): Promise<number> {
  let m = 0;
  for (let i = 0; i < data.length; i++) {
    const a = Math.abs(data[i]) + (residual ? Math.abs(residual[i]) : 0);
    if (a > m) m = a;  // NaN never compares greater: non-finite values pass through unscaled
  }
  const bound = new Float32Array([m]);
  await comm.allReduce(bound, { op: 'max', ...timeout });
  const total = bound[0] * comm.size * 1.001;  // 1.001 covers float32 rounding of the bound
  if (!(total > 0) || !Number.isFinite(total)) return 1;
  const k = Math.max(-126, Math.min(126, Math.floor(Math.log2(32752 / total))));
  return 2 ** k;
}

function scaleBy(data: Float32Array, residual: Float64Array | null, p: number): void {
  for (let i = 0; i < data.length; i++) data[i] *= p;
  if (residual) for (let i = 0; i < residual.length; i++) residual[i] *= p;
}

/**
 * Sums `data` over the ranks in place (bitwise the same on every rank), sending encoded chunks
 * around a ring. `codecAt(c)` is the codec for chunk c this call (random-k varies its seed);
 * `feedback` is this tensor's residual state, or null for none.
 */
export async function ringCompressedAllReduce(comm: RingComm, data: Float32Array,
                                              codecAt: (c: number) => Codec,
                                              feedback: FeedbackState | null,
                                              timeoutMs: number | undefined): Promise<void> {
  const { rank, size } = comm;
  const count = data.length;
  const timeout = timeoutMs === undefined ? {} : { timeoutMs };
  const residual = feedback ? feedback.residual : null;
  if (residual && residual.length !== count) {
    throw new NodecclRangeError(`rank ${rank}: allReduce with compression: the residual has ` +
      `${residual.length} elements but the array ${count}; reset the ErrorFeedback`);
  }
  const bounds = (c: number) => chunkBounds(count, size, c);
  const part = <A extends Float32Array | Float64Array>(a: A, c: number): A => {
    const [lo, hi] = bounds(c);
    return a.subarray(lo, hi) as A;
  };
  const mod = (i: number) => ((i % size) + size) % size;
  const codec0 = codecAt(0);
  const p = codec0.kind === 'float16' ? await float16Scale(comm, data, residual, timeout) : 1;
  if (p !== 1) scaleBy(data, residual, p);

  // Reduce-scatter: pass the running encoded sum of one chunk to the next rank per step.
  let partial: Float32Array | null = null;
  for (let s = 0; s < size - 1; s++) {
    const cs = mod(rank - s - 1);
    const cr = mod(rank - s - 2);
    const send = encodeChunk(codecAt(cs), part(data, cs), partial,
      residual ? part(residual, cs) : null);
    const [lo, hi] = bounds(cr);
    const recv = new Uint8Array(codecAt(cr).encodedBytes(hi - lo));
    await comm.sendRecv([{ peer: mod(rank + 1), send }], [{ peer: mod(rank - 1), recv }],
      timeout);
    partial = codecAt(cr).decode(recv, hi - lo);
  }

  // Final encoding of this rank's chunk, then every rank gets every chunk's bytes.
  const mine = encodeChunk(codecAt(rank), part(data, rank), partial,
    residual ? part(residual, rank) : null);
  let largest = 0;
  for (let c = 0; c < size; c++) {
    const [lo, hi] = bounds(c);
    largest = Math.max(largest, codecAt(c).encodedBytes(hi - lo));
  }
  const padded = new Uint8Array(largest);
  padded.set(mine);
  const all = new Uint8Array(largest * size);
  await comm.allGather(padded, all, timeout);

  // Everyone decodes the same bytes in the same order: identical results on every rank.
  for (let c = 0; c < size; c++) {
    const [lo, hi] = bounds(c);
    const codec = codecAt(c);
    const bytes = all.subarray(c * largest, c * largest + codec.encodedBytes(hi - lo));
    codec.decode(bytes, data.subarray(lo, hi));
  }
  if (p !== 1) scaleBy(data, residual, 1 / p);
}
