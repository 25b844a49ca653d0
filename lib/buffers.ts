// SPDX-License-Identifier: Apache-2.0
// Checks that a TypedArray's memory can be handed to native code: not detached, not resizable.
//
// Why both are refused: the native side takes a pointer and a byte count when the call is made
// and uses them on a worker thread until the operation ends. A detached buffer has no memory
// (its length reads 0, so a collective would silently move nothing); a resizable buffer can
// shrink or grow while the pointer is in use, so the count taken at the call would no longer
// describe the memory. Each check is a property read (plus one view construction on Node
// versions without `ArrayBuffer.prototype.detached`), so it stays on for every call.
import { NodecclRangeError, NodecclTypeError } from './errors';

// The ArrayBuffer fields added by ES2024 (resizable buffers) and Node 22 (`detached`); typed
// here because the project's lib setting predates them.
interface BufferState {
  detached?: boolean;
  resizable?: boolean;
  growable?: boolean;
  byteLength: number;
}

/** True when `buffer` has been detached (transferred with postMessage/structuredClone). */
export function isDetached(buffer: ArrayBufferLike): boolean {
  const b = buffer as unknown as BufferState;
  if (typeof b.detached === 'boolean') return b.detached;
  if (typeof SharedArrayBuffer !== 'undefined' && buffer instanceof SharedArrayBuffer) {
    return false;  // a SharedArrayBuffer cannot be detached
  }
  if (b.byteLength !== 0) return false;
  // Node 20 has no `detached` getter; constructing a view over a detached buffer throws.
  try {
    new Uint8Array(buffer);
    return false;
  } catch {
    return true;
  }
}

/**
 * Throws unless `x`'s buffer is attached and of fixed length. `fn` and `what` name the call and
 * the argument in the message (e.g. 'allReduce', 'tensor').
 *
 * @throws NodecclTypeError for a detached buffer (ERR_NODECCL_INVALID_ARGUMENT).
 * @throws NodecclTypeError for a resizable ArrayBuffer or growable SharedArrayBuffer.
 */
export function checkBuffer(fn: string, what: string, x: ArrayBufferView): void {
  const buffer = x.buffer;
  if (isDetached(buffer)) {
    throw new NodecclTypeError(`${fn}: ${what} is a ${x.constructor.name} whose ArrayBuffer ` +
      'is detached (it was transferred with postMessage or structuredClone); pass an array ' +
      'whose buffer this thread still owns, e.g. the one the transfer produced');
  }
  const b = buffer as unknown as BufferState;
  if (b.resizable === true || b.growable === true) {
    const kind = b.growable === true ? 'growable SharedArrayBuffer' : 'resizable ArrayBuffer';
    throw new NodecclTypeError(`${fn}: ${what} is a ${x.constructor.name} over a ${kind}, ` +
      'which could change length while nodeccl uses it; copy it into a fixed-length array ' +
      `first, e.g. new ${x.constructor.name}(${what})`);
  }
}

/**
 * Throws when a tensor's array no longer holds the elements its shape promises (its buffer was
 * detached or resized after the tensor was made).
 */
export function checkTensorLength(fn: string, what: string, length: number,
                                  shape: readonly number[], expected: number): void {
  if (length !== expected) {
    throw new NodecclRangeError(`${fn}: ${what} has shape [${shape.join(', ')}] ` +
      `(${expected} elements) but its array now holds ${length}; its buffer was resized or ` +
      'transferred after the tensor was made. Make a new tensor over the current array');
  }
}
