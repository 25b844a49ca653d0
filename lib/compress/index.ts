// SPDX-License-Identifier: Apache-2.0
// Model compression: magnitude pruning with masks, bitmap sparse storage, k-means weight
// sharing, int8/int4 quantized export, the distillation loss, and the compressed model file.
export { magnitudePrune, PruneMask, type PruneOptions, type Steppable } from './prune';
export { toSparse, toDense } from './sparse';
export { shareWeights, type ShareOptions, type ShareResult } from './share';
export { quantizeWeights, type QuantizeWeightsOptions } from './quantize';
export {
  distillationLoss, type DistillationOptions, type DistillationResult,
} from './distill';
export {
  decompress, type CompressedTensor, type DenseTensor, type SparseTensor, type SharedTensor,
  type QuantizedTensor,
} from './types';
export {
  encodeCompressedModel, decodeCompressedModel, saveCompressedModel, loadCompressedModel,
  type CompressedModel,
} from './format';
