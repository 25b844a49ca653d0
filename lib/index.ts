// SPDX-License-Identifier: Apache-2.0
// nodeccl's public surface: tensors, communicators and their store, fused optimizers, errors.
export { init, type InitOptions } from './init';
export {
  Communicator, type TensorLike, type CollectiveOptions, type ReduceOptions, type RootOptions,
  type AllToAllOptions, type SendSpec, type RecvSpec,
} from './comm';
export { Store, StoreServer, DEFAULT_STORE_TIMEOUT_MS } from './store';
export * from './tensor';
export * from './dtype';
export * from './optim';
export * from './quant';
export * from './onebit-adam';
export * from './loss';
export * from './compress';
export * from './train';
export * from './ps';
export * from './parallel';
export { resolveWorld, type WorldInfo } from './env';
export type { Backend } from './mpi';
export {
  NodecclError, NodecclTypeError, NodecclRangeError, type NodecclErrorCode,
} from './errors';
export * as cuda from './cuda';
