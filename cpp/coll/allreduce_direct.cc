// SPDX-License-Identifier: Apache-2.0
// Direct-exchange all-reduce: every rank sends its whole buffer to every other rank, then
// reduces the n buffers in rank order 0..n-1 (so every rank computes bitwise the same result).
//
// Cost, for n ranks and S bytes per rank: one round (n - 1 pairwise exchanges, all in flight at
// once through shared memory); each rank sends and receives (n - 1) * S bytes and reduces
// (n - 1) * S. Latency-optimal, bandwidth-poor: used for small S (kDirectMaxBytes).
//
// The user's buffer is written once, at the end: a call that fails leaves it as it was.
#include "coll/allreduce_direct.h"

#include <cstring>

#include "coll/ring.h"
#include "coll/validate.h"
#include "common/error.h"
#include "common/log.h"
#include "reduce/reduce.h"
#include "transport/shm/shm_transport.h"

namespace nodeccl {
namespace {

// Above this many bytes per rank the ring's 2(n - 1)/n * S beats the direct (n - 1) * S.
constexpr size_t kDirectMaxBytes = 32 * 1024;

}  // namespace

bool allReduceUsesDirect(const Communicator& comm, size_t count, DataType dtype) {
  const std::string& algo = comm.options().algo;
  if (algo == "direct") return true;
  if (algo == "ring" || algo == "hier") return false;
  return count * dtypeSize(dtype) <= kDirectMaxBytes;
}

DirectAllReduce::DirectAllReduce(Communicator& comm, void* data, size_t count, DataType dtype,
                                 ReduceOp op, Millis timeout)
    : comm_(comm), count_(count), dtype_(dtype), op_(op) {
  const char* kName = "allReduce";
  checkDtype(comm, kName, dtype);
  checkOp(comm, kName, op);
  bytes_ = checkedBytes(comm, kName, count, dtypeSize(dtype), static_cast<size_t>(comm.size()));
  bytes_ /= static_cast<size_t>(comm.size());
  checkBuffer(comm, kName, "data", data, count);
  comm.beginOp(OpKind::kAllReduce, timeout, OpParams{int(dtype), int(op), -1, count});
  comm.noteAlgorithm("allReduce", "direct", bytes_);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "allReduce direct count=", count, " ",
                dtypeName(dtype), " ", reduceOpName(op));
  data_ = static_cast<unsigned char*>(data);
  sent_.assign(static_cast<size_t>(comm.size()), 0);
  received_.assign(static_cast<size_t>(comm.size()), 0);
  // Received buffers, one per rank (this rank's own is data_ itself).
  scratchBytes(comm, bytes_ * static_cast<size_t>(comm.size()), kSlotRecvA);
}

unsigned char* DirectAllReduce::slot(int r) {
  if (r == comm_.rank()) return data_;
  return scratchBytes(comm_, bytes_ * static_cast<size_t>(comm_.size()), kSlotRecvA) +
         bytes_ * static_cast<size_t>(r);
}

// Exchange k pairs this rank with to = rank + k (send) and from = rank - k (receive): every
// rank walks the same schedule, so a blocking finish on all ranks cannot deadlock.
bool DirectAllReduce::tryFinish() {
  ShmTransport* shm = comm_.shm();
  if (done_) return true;
  if (shm == nullptr) return false;
  const int n = comm_.size(), r = comm_.rank();
  unsigned char empty = 0;
  const void* src = data_ ? data_ : &empty;
  bool all = true;
  for (int k = 1; k < n; ++k) {
    if (!sent_[k]) sent_[k] = shm->trySend((r + k) % n, src, bytes_, comm_.currentOp());
    int from = (r + n - k) % n;
    if (!received_[k]) {
      received_[k] = shm->tryRecv(from, slot(from), bytes_, comm_.currentOp());
    }
    all = all && sent_[k] && received_[k];
  }
  if (all) combine();
  return all;
}

void DirectAllReduce::finish() {
  if (done_) return;
  const int n = comm_.size(), r = comm_.rank();
  unsigned char empty = 0;
  const void* src = data_ ? data_ : &empty;
  for (int k = 1; k < n; ++k) {
    const int to = (r + k) % n, from = (r + n - k) % n;
    comm_.sendRecv(sent_[k] ? -1 : to, src, bytes_, received_[k] ? -1 : from, slot(from),
                   bytes_);
    sent_[k] = received_[k] = 1;
  }
  combine();
}

// Reduces the n buffers in rank order into a scratch accumulator (float32 for half types, so
// they round once), then writes the result into the user's buffer.
void DirectAllReduce::combine() {
  done_ = true;
  const int n = comm_.size();
  if (count_ == 0) return;
  const DataType acc = accumulateType(dtype_);
  const size_t accBytes = count_ * dtypeSize(acc);
  unsigned char* work = scratchBytes(comm_, 2 * accBytes, kSlotWork);
  unsigned char* wide = work + accBytes;
  if (isHalfType(dtype_)) toFloat32(slot(0), reinterpret_cast<float*>(work), count_, dtype_);
  else std::memcpy(work, slot(0), bytes_);
  for (int q = 1; q < n; ++q) {
    const unsigned char* in = slot(q);
    if (isHalfType(dtype_)) {
      toFloat32(in, reinterpret_cast<float*>(wide), count_, dtype_);
      in = wide;
    }
    reduceInto(work, in, count_, acc, op_);
  }
  if (op_ == ReduceOp::kAvg) divideInPlace(work, count_, acc, n);
  if (isHalfType(dtype_)) fromFloat32(reinterpret_cast<float*>(work), data_, count_, dtype_);
  else std::memcpy(data_, work, bytes_);
}

}  // namespace nodeccl
