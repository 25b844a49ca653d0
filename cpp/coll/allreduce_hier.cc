// SPDX-License-Identifier: Apache-2.0
// Hierarchical all-reduce for jobs that span hosts: reduce within each host to its leader (the
// host's lowest rank), all-reduce across the leaders with the ring, broadcast within each host.
//
// Cost, for h hosts of L ranks and S bytes per rank: inside a host, a binomial reduce and a
// binomial broadcast (ceil(log2 L) steps each, S per step, over shared memory); across hosts,
// the leaders' ring: 2(h - 1) steps, and each host's link carries 2(h - 1)/h * S each way. The
// flat ring over all n = hL ranks crosses each host's link with 2(n - 1)/n * S, and takes
// 2(n - 1) steps: hierarchical moves 1.5x fewer bytes between hosts at h = 2, L = 2 (and up to
// 2x as L grows), so it wins when the links between hosts are the bottleneck. Its price is
// that one rank per host carries all of the host's traffic, and two extra passes over S in
// shared memory.
//
// Everything is computed in the accumulation type (float32 for float16/bfloat16), so half types
// round once, on the leader, before the broadcast; avg sums and divides once, on the leader.
// Every rank ends with the leader's bytes: bitwise identical everywhere. The user's buffer is
// written only at the end, so a failed call leaves it unchanged.
#include <cstring>

#include "coll/ring.h"
#include "reduce/reduce.h"

namespace nodeccl {

// NODECCL_ALGO=hier forces it; auto takes it whenever the job spans hosts and some host holds
// more than one rank (with one rank per host it is the flat ring).
bool allReduceUsesHier(const Communicator& comm) {
  const std::string& algo = comm.options().algo;
  if (algo == "hier") return true;
  if (algo != "auto") return false;
  return comm.hostCount() > 1 && comm.hostCount() < comm.size();
}

void allReduceHier(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op) {
  const DataType acc = accumulateType(dtype);
  const ReduceOp inner = op == ReduceOp::kAvg ? ReduceOp::kSum : op;
  const size_t accBytes = count * dtypeSize(acc), bytes = count * dtypeSize(dtype);
  Communicator* local = comm.localView();
  Communicator* leaders = comm.leaderView();  // null unless this rank leads its host

  // 1. Within the host: the leader's working copy becomes op over the host's ranks.
  unsigned char* work = scratchBytes(comm, accBytes, kSlotWork);
  if (isHalfType(dtype)) toFloat32(data, reinterpret_cast<float*>(work), count, dtype);
  else if (bytes > 0) std::memcpy(work, data, bytes);
  reduceTree(*local, work, count, acc, inner, 0);

  // 2. Across hosts: the leaders all-reduce their hosts' partials, then finish the result
  // (divide once for avg, round once for a half type) in the user's type.
  unsigned char* out = scratchBytes(comm, bytes, kSlotOut);
  if (leaders != nullptr) {
    allReduceRingCore(*leaders, work, count, acc, inner);
    if (op == ReduceOp::kAvg) divideInPlace(work, count, acc, comm.size());
    if (isHalfType(dtype)) fromFloat32(reinterpret_cast<float*>(work), out, count, dtype);
    else if (bytes > 0) std::memcpy(out, work, bytes);
  }

  // 3. Within the host: the leader's result goes to every rank, then into the user's buffer.
  broadcastTree(*local, out, bytes, 0);
  if (bytes > 0) std::memcpy(data, out, bytes);
}

}  // namespace nodeccl
