// SPDX-License-Identifier: Apache-2.0
// The exchange engine of the direct algorithms (direct.h), and their shared rank-order
// reduction.
//
// Schedule: exchange k (k = 1..n-1) pairs this rank with to = rank + k (its send) and
// from = rank - k (its receive), so the message from a to b moves at exchange b - a on both
// sides. Every rank walks the same k in the same order, so a blocking finish cannot deadlock;
// over shared memory every send that fits is posted first, so the blocking receives overlap
// and the round costs one latency, not n - 1.
#include "coll/direct.h"

#include <cstring>

#include "coll/ring.h"
#include "common/error.h"
#include "reduce/reduce.h"
#include "transport/shm/shm_transport.h"

namespace nodeccl {

DirectExchange::DirectExchange(Communicator& comm)
    : comm_(comm),
      sends_(static_cast<size_t>(comm.size())),
      recvs_(static_cast<size_t>(comm.size())) {}

void DirectExchange::send(int peer, const void* buf, size_t bytes) {
  NODECCL_CHECK(peer != comm_.rank() && !sends_.at(static_cast<size_t>(peer)).pending);
  void* b = buf != nullptr ? const_cast<void*>(buf) : &empty_;
  sends_[static_cast<size_t>(peer)] = {b, bytes, true};
}

void DirectExchange::recv(int peer, void* buf, size_t bytes) {
  NODECCL_CHECK(peer != comm_.rank() && !recvs_.at(static_cast<size_t>(peer)).pending);
  recvs_[static_cast<size_t>(peer)] = {buf != nullptr ? buf : &empty_, bytes, true};
}

// One pass over the schedule with the non-blocking halves: posts each send whose whole message
// fits in its ring now, takes each message that has fully arrived. True when nothing is left.
bool DirectExchange::tryMove() {
  ShmTransport* shm = comm_.shm();
  const int n = comm_.size(), r = comm_.rank();
  const OpInfo& op = comm_.currentOp();
  bool all = true;
  for (int k = 1; k < n; ++k) {
    const int to = (r + k) % n, from = (r + n - k) % n;
    Message& s = sends_[static_cast<size_t>(to)];
    Message& v = recvs_[static_cast<size_t>(from)];
    if (s.pending) s.pending = !shm->trySend(to, s.buf, s.bytes, op);
    if (v.pending) v.pending = !shm->tryRecv(from, v.buf, v.bytes, op);
    all = all && !s.pending && !v.pending;
  }
  return all;
}

bool DirectExchange::tryFinish() {
  if (done_) return true;
  if (comm_.shm() == nullptr || !tryMove()) return false;
  complete();
  return true;
}

void DirectExchange::finish() {
  if (done_) return;
  if (comm_.shm() != nullptr && tryMove()) return complete();
  const int n = comm_.size(), r = comm_.rank();
  for (int k = 1; k < n; ++k) {
    const int to = (r + k) % n, from = (r + n - k) % n;
    Message& s = sends_[static_cast<size_t>(to)];
    Message& v = recvs_[static_cast<size_t>(from)];
    comm_.sendRecv(s.pending ? to : -1, s.buf, s.bytes, v.pending ? from : -1, v.buf, v.bytes);
    s.pending = v.pending = false;
  }
  complete();
}

void DirectExchange::complete() {
  done_ = true;
  if (complete_) complete_();
}

// The accumulator lives in scratch (float32 for half types, so they round once), then the
// result is written to `out`: `out` may be one of the blocks.
void reduceInRankOrder(Communicator& comm, const std::vector<const void*>& blocks, void* out,
                       size_t count, DataType dtype, ReduceOp op) {
  const int n = static_cast<int>(blocks.size());
  if (count == 0) return;
  const DataType acc = accumulateType(dtype);
  const size_t accBytes = count * dtypeSize(acc), bytes = count * dtypeSize(dtype);
  unsigned char* work = scratchBytes(comm, 2 * accBytes, kSlotWork);

  // Half types: widen each block into `wide`, then add it to the float32 accumulator.
  if (isHalfType(dtype)) {
    auto* sum = reinterpret_cast<float*>(work);
    auto* wide = reinterpret_cast<float*>(work + accBytes);
    toFloat32(blocks[0], sum, count, dtype);
    for (int q = 1; q < n; ++q) {
      toFloat32(blocks[static_cast<size_t>(q)], wide, count, dtype);
      reduceInto(sum, wide, count, acc, op);
    }
    if (op == ReduceOp::kAvg) divideInPlace(sum, count, acc, n);
    fromFloat32(sum, out, count, dtype);
    return;
  }

  // Other types: the first two blocks combined straight into the accumulator, then the rest.
  if (n == 1) std::memcpy(work, blocks[0], bytes);
  else reduceTo(work, blocks[0], blocks[1], count, dtype, op);
  for (int q = 2; q < n; ++q) reduceInto(work, blocks[static_cast<size_t>(q)], count, dtype, op);
  if (op == ReduceOp::kAvg) divideInPlace(work, count, dtype, n);
  std::memcpy(out, work, bytes);
}

}  // namespace nodeccl
