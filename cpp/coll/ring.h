// SPDX-License-Identifier: Apache-2.0
// Internal building blocks shared by the algorithm files: how a buffer is cut into one
// segment per rank, the two ring phases (reduce-scatter, all-gather) that allReduce,
// reduceScatter and allGather are made of, and the scratch slots each algorithm may use.
#pragma once

#include <cstddef>

#include "comm/communicator.h"
#include "common/dtype.h"

namespace nodeccl {

// Scratch slots (Communicator::scratch). A slot's buffer is reused across operations, so two
// buffers live at once only if they use different slots.
constexpr int kSlotWork = 0;   // a whole-buffer working copy (float32 for half types)
constexpr int kSlotRecvA = 1;  // receive buffers for one segment, alternated by the ring
constexpr int kSlotRecvB = 2;
constexpr int kSlotOut = 3;    // a whole-buffer result, copied to the user's buffer at the end

// Ring steps move in chunks of this many bytes, so that reducing a chunk overlaps the arrival
// of the next (the transport buffers at least this much per peer).
constexpr size_t kChunkBytes = 256 * 1024;

// A buffer of `total` elements cut into n segments, one per rank: segment i holds `base`
// elements, plus one more for each of the first `extra` segments. Sizes differ by at most one,
// and when total < n the last n - total segments are empty (they still travel, as headers).
struct Segments {
  size_t base = 0;
  size_t extra = 0;

  static Segments split(size_t total, int n) {
    return {total / static_cast<size_t>(n), total % static_cast<size_t>(n)};
  }
  static Segments blocks(size_t perRank) { return {perRank, 0}; }

  size_t count(int i) const { return base + (static_cast<size_t>(i) < extra ? 1 : 0); }
  size_t offset(int i) const {
    size_t k = static_cast<size_t>(i);
    return base * k + (k < extra ? k : extra);
  }
  size_t maxCount() const { return base + (extra > 0 ? 1 : 0); }
};

// Half types are reduced in float32 and rounded once; every other type in itself.
inline DataType accumulateType(DataType dtype) {
  return isHalfType(dtype) ? DataType::kFloat32 : dtype;
}

// Ring reduce-scatter (n - 1 steps; each rank sends every segment but its own once).
// `in` holds this rank's contribution to every segment of `seg` and is only read. On return
// `out` (seg.count(rank) elements) holds op over all ranks of segment `rank`; `out` may alias
// in's own segment. Elements are `dtype`, also the type on the wire. avg is left undivided.
void ringReduceScatter(Communicator& comm, const void* in, void* out, const Segments& seg,
                       DataType dtype, ReduceOp op);

// Ring all-gather in place (n - 1 steps; each rank sends every segment but one once). On entry
// segment `rank` of `buf` holds this rank's block; on return every segment holds its owner's.
void ringAllGather(Communicator& comm, void* buf, const Segments& seg, size_t elemBytes);

// Pipelined chain broadcast of `bytes` from `root` (broadcast_chain.cc); `data` is the
// caller's buffer, written only at the end on non-roots.
void broadcastChain(Communicator& comm, void* data, size_t bytes, int root);

// The algorithms themselves, without argument checks or beginOp, for composite algorithms
// that run them on a view of some ranks (allreduce_hier.cc). Each leaves the result in `data`
// as its collective does (reduceTree: on the root only).
void allReduceRingCore(Communicator& comm, void* data, size_t count, DataType dtype,
                       ReduceOp op);
void reduceScatterRingCore(Communicator& comm, const void* in, void* out, size_t count,
                           DataType dtype, ReduceOp op);
void allGatherRingCore(Communicator& comm, const void* in, void* out, size_t count,
                       DataType dtype);
void reduceTree(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op,
                int root);
void broadcastTree(Communicator& comm, void* data, size_t bytes, int root);

// All-reduce in a job across hosts (allreduce_hier.cc): true when it applies (NODECCL_ALGO=hier,
// or auto over several hosts with several ranks on some host); then allReduceAcrossHosts runs
// the call (begins the operation itself), hierarchical or flat as measured.
bool allReduceUsesHier(const Communicator& comm);
void allReduceAcrossHosts(Communicator& comm, void* data, size_t count, DataType dtype,
                          ReduceOp op, Millis timeout);

// comm.scratch(bytes, slot) as a byte pointer, never null (a 0-byte request gets 1 byte), so
// that empty segments still have a valid address to send from and receive into.
inline unsigned char* scratchBytes(Communicator& comm, size_t bytes, int slot) {
  return static_cast<unsigned char*>(comm.scratch(bytes > 0 ? bytes : 1, slot));
}

}  // namespace nodeccl
