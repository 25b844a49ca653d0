// SPDX-License-Identifier: Apache-2.0
// What the staged algorithms share (staged.h): when they apply, the flag exchange between
// their phases, the start of a call, and the chunked rank-order reduction.
#include "coll/staged.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "coll/direct.h"
#include "coll/ring.h"
#include "common/error.h"
#include "common/log.h"
#include "reduce/copy.h"
#include "reduce/reduce.h"

namespace nodeccl {
namespace {

// Elements reduced per chunk: 64 KiB of float32, so that a chunk of the output and of the
// float32 accumulator stay in the core's L2 cache while every block is added to them.
constexpr size_t kChunkElems = 16 * 1024;

}  // namespace

bool usesStaged(const Communicator& comm) {
  ShmTransport* shm = comm.shm();
  if (shm == nullptr || !shm->windowsUsable() || comm.size() < 2 || comm.mpi()) return false;
  const std::string& algo = comm.options().algo;
  return algo == "auto" || algo == "staged";
}

bool StagedShared::all() const {
  return !at.empty() && std::all_of(at.begin(), at.end(), [](auto* p) { return p != nullptr; });
}

bool StagedShared::any() const {
  return std::any_of(at.begin(), at.end(), [](auto* p) { return p != nullptr; });
}

void StagedShared::checkPeer(const Communicator& comm, int q, const char* doing) const {
  if (q == comm.rank() || at[static_cast<size_t>(q)] == nullptr) return;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (SharedHeap::gaveUp(comm.shm()->heapBase(q)).load() == call + 1) {
    throw Error(ErrorCode::kAborted,
                strcat("rank ", comm.rank(), ": ", opKindName(comm.currentOp().kind), " #",
                       comm.currentOp().step, ": rank ", q,
                       " gave up on this call while this rank was ", doing,
                       " its shared array (see rank ", q, "'s error for why)"));
  }
}

int64_t sharedOffset(const Communicator& comm, const void* p, size_t bytes) {
  std::shared_ptr<SharedHeap> heap = comm.shm() ? comm.shm()->heap() : nullptr;
  return heap && p != nullptr && bytes > 0 ? heap->offsetOf(p, bytes) : -1;
}

StagedOp::StagedOp(Communicator& comm, bool ok, std::function<void()> middle,
                   std::function<void()> last, std::function<void()> ring,
                   const char* lastName, std::shared_ptr<StagedShared> shared)
    : comm_(comm), middle_(std::move(middle)), last_(std::move(last)), ring_(std::move(ring)),
      shared_(std::move(shared)), theirs_(static_cast<size_t>(comm.size()), Flag{1, -1}),
      lastName_(lastName) {
  if (shared_) mine_.shared = shared_->mine;
  post(ok);
}

void StagedOp::run(const std::function<void()>& work, const char* name) {
  if (!comm_.tracing()) return work();
  auto t0 = std::chrono::steady_clock::now();
  work();
  comm_.tracePhase(name, t0, std::chrono::steady_clock::now(), "");
}

void StagedOp::synced() {
  if (comm_.tracing()) {
    comm_.tracePhase("sync", posted_, std::chrono::steady_clock::now(),
                     strcat("\"peers\":", comm_.size() - 1));
  }
}

void StagedOp::post(bool ok) {
  if (comm_.tracing()) posted_ = std::chrono::steady_clock::now();
  mine_.ok = ok ? 1 : 0;
  ex_ = std::make_unique<DirectExchange>(comm_);
  for (int q = 0; q < comm_.size(); ++q) {
    if (q == comm_.rank()) continue;
    ex_->send(q, &mine_, sizeof(Flag));
    ex_->recv(q, &theirs_[static_cast<size_t>(q)], sizeof(Flag));
  }
}

void StagedOp::afterFirst() {
  synced();
  const int me = comm_.rank();
  theirs_[static_cast<size_t>(me)] = mine_;
  const bool all = std::all_of(theirs_.begin(), theirs_.end(), [](Flag f) { return f.ok == 1; });
  if (shared_) {
    shared_->at.assign(theirs_.size(), nullptr);
    for (int q = 0; q < comm_.size(); ++q) {
      const int64_t off = theirs_[static_cast<size_t>(q)].shared;
      if (off >= 0) shared_->at[static_cast<size_t>(q)] = comm_.shm()->heapBase(q) + off;
    }
  }
  if (!all) {
    state_ = State::kRing;
  } else if (middle_) {
    run(middle_, "reduce");
    post(true);
    state_ = State::kSecond;
  } else if (shared_ && shared_->any()) {
    // The last work read shared arrays in place: one more exchange keeps their owners in the
    // call until every reader is done (staged.h).
    wrote_ = true;
    run(last_, lastName_);
    last_ = [] {};
    post(true);
    state_ = State::kSecond;
  } else {
    run(last_, lastName_);
    state_ = State::kDone;
  }
}

void StagedOp::markGaveUp() {
  if (!shared_ || shared_->mine < 0) return;
  // Peers may still read or write this rank's array: tell them first (see staged.h).
  SharedHeap::gaveUp(comm_.shm()->heapBase(comm_.rank())).store(shared_->call + 1);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void StagedOp::failed(const Error& e) {
  markGaveUp();
  if (!shared_) throw;
  // Peers write into shared arrays only when every rank's is shared (all-reduce): known once
  // the first exchange is done; before, they may have passed it while this rank did not.
  const bool mayBeWritten = shared_->written && shared_->mine >= 0 &&
                            (state_ == State::kFirst || (state_ == State::kSecond &&
                                                         shared_->all()));
  if (mayBeWritten) {
    throw Error(e.code(), e.what(), "; the shared array passed in may hold partial results "
                "(peers write into shared arrays in place): refill it before using it again");
  }
  if (wrote_) {
    throw Error(e.code(), e.what(), "; this rank's output may have been overwritten: shared "
                "arrays were read into it before the call's last exchange");
  }
  throw;
}

bool StagedOp::tryFinish() {
  try {
    return tryFinishImpl();
  } catch (const Error& e) {
    failed(e);
  } catch (...) {
    markGaveUp();
    throw;
  }
}

void StagedOp::finish() {
  try {
    finishImpl();
  } catch (const Error& e) {
    failed(e);
  } catch (...) {
    markGaveUp();
    throw;
  }
}

bool StagedOp::tryFinishImpl() {
  if (state_ == State::kFirst) {
    if (!ex_->tryFinish()) return false;
    afterFirst();
  }
  if (state_ == State::kSecond) {
    if (!ex_->tryFinish()) return false;
    synced();
    run(last_, lastName_);
    state_ = State::kDone;
  }
  return state_ == State::kDone;
}

void StagedOp::finishImpl() {
  if (state_ == State::kFirst) {
    ex_->finish();
    afterFirst();
  }
  if (state_ == State::kSecond) {
    ex_->finish();
    synced();
    run(last_, lastName_);
  }
  if (state_ == State::kRing) ring_();
  state_ = State::kDone;
}

void traceStaging(Communicator& comm, const StagedCall& call, size_t bytes) {
  if (!comm.tracing()) return;
  comm.tracePhase("stage", call.began, std::chrono::steady_clock::now(),
                  strcat("\"bytes\":", call.ok ? bytes : 0));
}

StagedCall beginStaged(Communicator& comm, size_t bytes) {
  StagedCall call{comm.shm(), 0, false, {}, comm.shm()->windowCalls()};
  if (comm.tracing()) call.began = std::chrono::steady_clock::now();
  call.half = call.shm->nextWindowHalf();
  std::string why;
  call.ok = call.shm->backWindow(call.half, bytes, &why);
  if (!call.ok) {
    NODECCL_INFO("coll", comm.rank(), comm.size(), "staged call falls back to the ring: ", why);
  }
  return call;
}

bool stagedStreams(const Communicator& comm, size_t bytesPerRank) {
  return streamingPays(bytesPerRank * static_cast<size_t>(comm.size()));
}

void stagedCopy(void* dst, const void* src, size_t bytes, bool stream) {
  if (stream) copyStreaming(dst, src, bytes);
  else std::memcpy(dst, src, bytes);
}

void reduceBlocksTo(Communicator& comm, const std::vector<const void*>& blocks, void* out,
                    size_t count, DataType dtype, ReduceOp op, bool stream) {
  const size_t n = blocks.size(), elem = dtypeSize(dtype);
  auto at = [elem](const void* p, size_t i) {
    return static_cast<const unsigned char*>(p) + i * elem;
  };
  auto* dst = static_cast<unsigned char*>(out);
  // Scratch: a float32 sum and a widened block for half types; a chunk to stream out of.
  auto* work = static_cast<unsigned char*>(comm.scratch(3 * kChunkElems * 8, kSlotWork));
  auto* sum = reinterpret_cast<float*>(work);
  float* wide = sum + kChunkElems;
  unsigned char* chunk = work + 2 * kChunkElems * 8;
  // `out` may be one of the blocks (an in-place reduce-scatter: out = in + r * block); then,
  // as when streaming, each chunk is reduced into scratch first and copied out after.
  const size_t bytes = count * elem;
  const bool alias = std::any_of(blocks.begin(), blocks.end(), [&](const void* b) {
    const auto* p = static_cast<const unsigned char*>(b);
    return bytes > 0 && p < dst + bytes && dst < p + bytes;
  });
  const bool viaChunk = stream || alias;
  for (size_t i = 0; i < count; i += kChunkElems) {
    const size_t m = std::min(kChunkElems, count - i);
    unsigned char* to = viaChunk ? chunk : dst + i * elem;
    // Half types: widen each block's chunk, add it to the float32 sum, round once at the end.
    if (isHalfType(dtype)) {
      toFloat32(at(blocks[0], i), sum, m, dtype);
      for (size_t q = 1; q < n; ++q) {
        toFloat32(at(blocks[q], i), wide, m, dtype);
        reduceInto(sum, wide, m, DataType::kFloat32, op);
      }
      if (op == ReduceOp::kAvg) divideInPlace(sum, m, DataType::kFloat32, int(n));
      fromFloat32(sum, to, m, dtype);
    } else {
      // Other types: the first two blocks combined straight into the result, then the rest.
      if (n == 1) std::memcpy(to, at(blocks[0], i), m * elem);
      else reduceTo(to, at(blocks[0], i), at(blocks[1], i), m, dtype, op);
      for (size_t q = 2; q < n; ++q) reduceInto(to, at(blocks[q], i), m, dtype, op);
      if (op == ReduceOp::kAvg) divideInPlace(to, m, dtype, int(n));
    }
    if (stream) copyStreaming(dst + i * elem, chunk, m * elem);
    else if (viaChunk) std::memcpy(dst + i * elem, chunk, m * elem);
  }
}

}  // namespace nodeccl
