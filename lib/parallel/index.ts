// SPDX-License-Identifier: Apache-2.0
// Model-parallel building blocks: tensor-parallel linear layers and a GPipe pipeline schedule.
export { matmul, matmulTA, matmulTB, sliceColumns } from './matmul';
export { ColumnParallelLinear, RowParallelLinear, featureBlock, type ColumnParallelOptions,
  type RowParallelOptions } from './linear';
export { gpipe, type PipelineStage } from './pipeline';
