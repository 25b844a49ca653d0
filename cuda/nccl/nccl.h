// SPDX-License-Identifier: Apache-2.0
// nodeccl's NCCL communicator (comm.cu): created from a unique id shared through nodeccl's
// store, used through api.h's NcclCall. Operations on one Comm must be issued in the same order
// on every rank (the binding runs them on one ordered worker thread per communicator).
#pragma once

#include <cstdint>
#include <string>

#include "api.h"

namespace nodeccl {
namespace nccl {

struct Comm;

void uniqueId(uint8_t* out);  // cuda::kNcclIdBytes bytes, from rank 0
// Blocks until every rank has called it. LIMITATION: a rank that dies before calling it leaves
// the others blocked inside ncclCommInitRank, which NCCL cannot interrupt (its non-blocking init
// needs ncclConfig_t, whose layout changes between NCCL releases).
Comm* init(int device, int rank, int size, const uint8_t* id);
void run(Comm& c, const cuda::NcclCall& call);
void abort(Comm& c, const std::string& reason);  // any thread
void destroy(Comm* c);
}  // namespace nccl
}  // namespace nodeccl
