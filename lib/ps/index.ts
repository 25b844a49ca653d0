// SPDX-License-Identifier: Apache-2.0
// The parameter server's public surface: roles, servers, workers, shard plans, checkpoints.
export { isPSJob, psRole, type PSRole } from './role';
export { PSServer, type PSServerOptions, type PSServerSummary } from './server';
export {
  PSWorker, type PSWorkerOptions, type ParamMap, type PullResult, type PushResult,
  type ShardVersion,
} from './worker';
export {
  planShards, fnv1a, SPLIT_MIN_ELEMENTS, type KeySpec, type Shard, type ShardPlan,
} from './shard';
export { readCheckpoint, writeCheckpoint, CHECKPOINT_FORMAT } from './checkpoint';
