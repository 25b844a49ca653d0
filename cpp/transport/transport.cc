// SPDX-License-Identifier: Apache-2.0
// Names of operation kinds, as they appear in error messages ("allReduce #17 ...").
#include "transport/transport.h"

namespace nodeccl {

const char* opKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kNone: return "operation";
    case OpKind::kAllReduce: return "allReduce";
    case OpKind::kBroadcast: return "broadcast";
    case OpKind::kReduce: return "reduce";
    case OpKind::kAllGather: return "allGather";
    case OpKind::kReduceScatter: return "reduceScatter";
    case OpKind::kBarrier: return "barrier";
    case OpKind::kPointToPoint: return "send/recv";
    case OpKind::kInternal: return "setup";
    case OpKind::kAllToAll: return "allToAll";
    case OpKind::kGather: return "gather";
    case OpKind::kScatter: return "scatter";
  }
  return "unknown operation";
}

}  // namespace nodeccl
