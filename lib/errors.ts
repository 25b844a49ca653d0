// SPDX-License-Identifier: Apache-2.0
// Error classes with stable codes. Native errors arrive as plain Errors carrying `code`; the
// wrappers in this module turn them into NodecclError so `instanceof` and `.code` both work.

/** Stable error codes; the numbering of the native side lives in cpp/common/error.h. */
export type NodecclErrorCode =
  | 'ERR_NODECCL_INTERNAL'
  | 'ERR_NODECCL_INVALID_ARGUMENT'
  | 'ERR_NODECCL_TIMEOUT'
  | 'ERR_NODECCL_PEER_LOST'
  | 'ERR_NODECCL_MISMATCH'
  | 'ERR_NODECCL_ABORTED'
  | 'ERR_NODECCL_DESTROYED'
  | 'ERR_NODECCL_IO'
  | 'ERR_NODECCL_STORE'
  | 'ERR_NODECCL_LOAD';

/** An operational failure: timeout, lost peer, mismatch, I/O, a destroyed communicator. */
export class NodecclError extends Error {
  readonly code: NodecclErrorCode;
  constructor(code: NodecclErrorCode, message: string) {
    super(message);
    this.name = 'NodecclError';
    this.code = code;
  }
}

/** A wrong argument type, e.g. a Float64Array passed with dtype 'float32'. */
export class NodecclTypeError extends TypeError {
  readonly code = 'ERR_NODECCL_INVALID_ARGUMENT' as const;
  constructor(message: string) {
    super(message);
    this.name = 'NodecclTypeError';
  }
}

/** An argument of the right type but outside its allowed range (a rank, a root, a length). */
export class NodecclRangeError extends RangeError {
  readonly code = 'ERR_NODECCL_INVALID_ARGUMENT' as const;
  constructor(message: string) {
    super(message);
    this.name = 'NodecclRangeError';
  }
}

const KNOWN_CODES = new Set<string>([
  'ERR_NODECCL_INTERNAL', 'ERR_NODECCL_INVALID_ARGUMENT', 'ERR_NODECCL_TIMEOUT',
  'ERR_NODECCL_PEER_LOST', 'ERR_NODECCL_MISMATCH', 'ERR_NODECCL_ABORTED',
  'ERR_NODECCL_DESTROYED', 'ERR_NODECCL_IO', 'ERR_NODECCL_STORE', 'ERR_NODECCL_LOAD',
]);

/** Converts an error thrown or rejected by the native addon into the matching JS class. */
export function fromNative(e: unknown): Error {
  if (e instanceof NodecclError || e instanceof NodecclTypeError ||
      e instanceof NodecclRangeError) {
    return e;
  }
  if (e instanceof Error) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_NODECCL_INVALID_ARGUMENT') {
      return e instanceof RangeError ? new NodecclRangeError(e.message)
        : new NodecclTypeError(e.message);
    }
    if (code !== undefined && KNOWN_CODES.has(code)) {
      return new NodecclError(code as NodecclErrorCode, e.message);
    }
    return e;
  }
  return new NodecclError('ERR_NODECCL_INTERNAL', String(e));
}
