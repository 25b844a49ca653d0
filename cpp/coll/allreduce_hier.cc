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
// Which one runs, under NODECCL_ALGO=auto: nodeccl cannot know how fast the links between hosts
// are. Over slow links (the bottleneck: 200 Mbit/s, measured by bench/hosts.js) hierarchical is
// 1.45x faster than the flat ring; over fast ones (unshaped veth links, as fast as the copies
// it adds) the flat ring is. So small messages (under kTuneMinBytes, where the 2(h - 1) latencies
// across hosts instead of 2(n - 1) decide) always go hierarchical, and for larger ones the first
// 2 * kTrials calls alternate the two, timed; at the next call the ranks agree on the slowest
// rank's sums (an all-reduce max of two numbers, before the user's data is touched) and keep
// the faster from then on (logged at info). NODECCL_ALGO=hier or ring forces one.
//
// Everything is computed in the accumulation type (float32 for float16/bfloat16), so half types
// round once, on the leader, before the broadcast; avg sums and divides once, on the leader.
// Every rank ends with the leader's bytes: bitwise identical everywhere. The user's buffer is
// written only at the end, so a failed call leaves it unchanged.
#include <chrono>
#include <cstring>

#include "coll/collectives.h"
#include "coll/ring.h"
#include "coll/validate.h"
#include "common/log.h"
#include "reduce/reduce.h"

namespace nodeccl {
namespace {

constexpr size_t kTuneMinBytes = 1 << 20;
constexpr int kTrials = 2;  // timed calls of each algorithm before choosing

}  // namespace

// NODECCL_ALGO=hier forces it; auto considers it whenever the job spans hosts and some host
// holds more than one rank (with one rank per host it is the flat ring).
bool allReduceUsesHier(const Communicator& comm) {
  const std::string& algo = comm.options().algo;
  if (algo == "hier") return true;
  if (algo != "auto") return false;
  return comm.hostCount() > 1 && comm.hostCount() < comm.size();
}

namespace {

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

}  // namespace

void allReduceAcrossHosts(Communicator& comm, void* data, size_t count, DataType dtype,
                          ReduceOp op, Millis timeout) {
  const size_t bytes = count * dtypeSize(dtype);
  bool hier = true, timed = false;
  Communicator::AcrossHostsTuning& t = comm.acrossHostsTuning();
  if (comm.options().algo == "auto" && bytes >= kTuneMinBytes) {
    if (t.choice < 0 && t.trials == 2 * kTrials) {
      // Agree on the slowest rank's times first: every rank then makes the same choice.
      double both[2] = {t.seconds[0], t.seconds[1]};
      allReduce(comm, both, 2, DataType::kFloat64, ReduceOp::kMax, timeout);
      t.choice = both[1] <= both[0] ? 1 : 0;
      NODECCL_INFO("coll", comm.rank(), comm.size(), "allReduce across ", comm.hostCount(),
                   " hosts: hier ", both[1] * 1e3 / kTrials, " ms, flat ring ",
                   both[0] * 1e3 / kTrials, " ms per call from ", bytes, " bytes (slowest rank, ",
                   kTrials, " calls each): ", t.choice ? "hier" : "ring", " from now on");
    }
    if (t.choice >= 0) {
      hier = t.choice == 1;
    } else {
      hier = t.trials % 2 == 1;
      timed = true;
    }
  }
  comm.beginOp(OpKind::kAllReduce, timeout, OpParams{int(dtype), int(op), -1, count});
  comm.noteAlgorithm("allReduce", hier ? "hier" : "ring", bytes);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "allReduce ", hier ? "hier" : "ring",
                " count=", count, " ", dtypeName(dtype), " ", reduceOpName(op), " hosts=",
                comm.hostCount());
  unsigned char empty = 0;
  data = orEmpty(data, empty);
  const auto start = std::chrono::steady_clock::now();
  if (hier) allReduceHier(comm, data, count, dtype, op);
  else allReduceRingCore(comm, data, count, dtype, op);
  if (timed) {
    t.seconds[hier ? 1 : 0] +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    t.trials++;
  }
}

}  // namespace nodeccl
