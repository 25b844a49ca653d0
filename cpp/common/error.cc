// SPDX-License-Identifier: Apache-2.0
// Stable names for error codes; lib/errors.ts lists the same strings.
#include "common/error.h"

namespace nodeccl {

const char* errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInternal: return "ERR_NODECCL_INTERNAL";
    case ErrorCode::kInvalidArgument: return "ERR_NODECCL_INVALID_ARGUMENT";
    case ErrorCode::kTimeout: return "ERR_NODECCL_TIMEOUT";
    case ErrorCode::kPeerLost: return "ERR_NODECCL_PEER_LOST";
    case ErrorCode::kMismatch: return "ERR_NODECCL_MISMATCH";
    case ErrorCode::kAborted: return "ERR_NODECCL_ABORTED";
    case ErrorCode::kDestroyed: return "ERR_NODECCL_DESTROYED";
    case ErrorCode::kIo: return "ERR_NODECCL_IO";
    case ErrorCode::kStore: return "ERR_NODECCL_STORE";
  }
  return "ERR_NODECCL_INTERNAL";
}

}  // namespace nodeccl
