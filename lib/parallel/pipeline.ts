// SPDX-License-Identifier: Apache-2.0
// A GPipe pipeline schedule: the ranks of a communicator are consecutive stages of a model;
// micro-batches flow forward through every stage, then their gradients flow back.
//
// Schedule, for s stages and m micro-batches: forward of micro-batches 0..m-1 (stage k waits
// for stage k-1's activation of each), then backward in reverse order (stage k waits for stage
// k+1's gradient). Steps: m + s - 1 each way; the bubble (idle share) is (s - 1)/(m + s - 1).
// Each boundary carries, per micro-batch, one activation forward and one gradient back, each
// preceded by its length (one int32), so stages need not know each other's shapes.
import type { Communicator } from '../comm';
import { NodecclRangeError, NodecclTypeError } from '../errors';

/** What one stage computes; `mb` is the micro-batch index. */
export interface PipelineStage {
  /**
   * Forward of micro-batch `mb`: `input` is the previous stage's output (null on stage 0,
   * which reads its own data). Returns this stage's output (ignored on the last stage, which
   * typically computes the loss here). Keep whatever backward needs.
   */
  forward(mb: number, input: Float32Array | null): Float32Array | Promise<Float32Array>;
  /**
   * Backward of micro-batch `mb`: `gradOutput` is the gradient of this stage's output from
   * the next stage (null on the last stage, which starts from its loss). Accumulates parameter
   * gradients and returns the gradient of its input (ignored on stage 0).
   */
  backward(mb: number, gradOutput: Float32Array | null):
    Float32Array | null | Promise<Float32Array | null>;
}

async function sendSized(comm: Communicator, x: Float32Array, peer: number): Promise<void> {
  await comm.send(new Int32Array([x.length]), peer);
  await comm.send(x, peer);
}

async function recvSized(comm: Communicator, peer: number): Promise<Float32Array> {
  const n = await comm.recv(new Int32Array(1), peer);
  return comm.recv(new Float32Array(n[0]), peer);
}

/**
 * Runs one GPipe step of `microBatches` micro-batches on this rank's stage (stage = comm.rank,
 * comm.size stages). Resolves when this stage's backward of every micro-batch is done; the
 * caller then steps its optimizer (gradients summed over micro-batches).
 */
export async function gpipe(comm: Communicator, stage: PipelineStage, microBatches: number):
    Promise<void> {
  if (!Number.isInteger(microBatches) || microBatches < 1) {
    throw new NodecclRangeError(`rank ${comm.rank}: gpipe microBatches ${microBatches} must ` +
      'be a positive integer');
  }
  if (typeof stage?.forward !== 'function' || typeof stage?.backward !== 'function') {
    throw new NodecclTypeError(`rank ${comm.rank}: gpipe stage must have forward(mb, input) ` +
      'and backward(mb, gradOutput) methods');
  }
  const k = comm.rank;
  const last = comm.size - 1;
  for (let mb = 0; mb < microBatches; mb++) {
    const input = k === 0 ? null : await recvSized(comm, k - 1);
    const out = await stage.forward(mb, input);
    if (k < last) await sendSized(comm, out, k + 1);
  }
  for (let mb = microBatches - 1; mb >= 0; mb--) {
    const grad = k === last ? null : await recvSized(comm, k + 1);
    const gin = await stage.backward(mb, grad);
    if (k > 0) {
      if (!(gin instanceof Float32Array)) {
        throw new NodecclTypeError(`rank ${comm.rank}: gpipe stage ${k} backward returned no ` +
          'input gradient; every stage but the first must return a Float32Array');
      }
      await sendSized(comm, gin, k - 1);
    }
  }
}
