// SPDX-License-Identifier: Apache-2.0
// The training helpers built on the communicator: bucketed data parallelism, local SGD and a
// sharded (ZeRO-1) optimizer. Re-exported by the package's main entry.
export { DEFAULT_BUCKET_BYTES, planBuckets, type BucketPlan, type GradSlot } from './buckets';
export {
  DataParallel, fp16CompressHook, type BucketInfo, type DataParallelOptions, type ReduceHook,
} from './data-parallel';
export { type Float32Source } from './float32';
export { LocalSGD, type LocalSGDOptions } from './local-sgd';
export {
  ZeroRedundancyOptimizer, optimizerStateBytes, type OptimizerFactory, type ZeroOptions,
  type ZeroStateDict,
} from './zero';
