// SPDX-License-Identifier: Apache-2.0
// nodeccl/tfjs: data-parallel training of TensorFlow.js models (@tensorflow/tfjs is an optional
// peer dependency, loaded only by this entry point).
export {
  DistributedOptimizer, isDistributedOptimizer, type DistributedOptimizerOptions,
  type FusedFactory, type NamedTensor,
} from './optimizer';
export { DistributedCallback, type DistributedCallbackOptions } from './callback';
export { broadcastVariables, type VariableSource } from './variables';
