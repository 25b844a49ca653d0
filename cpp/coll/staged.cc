// SPDX-License-Identifier: Apache-2.0
// What the staged algorithms share (staged.h): when they apply, the flag exchange between
// their phases, the start of a call, and the chunked rank-order reduction.
#include "coll/staged.h"

#include <algorithm>
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

StagedOp::StagedOp(Communicator& comm, bool ok, std::function<void()> middle,
                   std::function<void()> last, std::function<void()> ring,
                   const char* lastName)
    : comm_(comm), middle_(std::move(middle)), last_(std::move(last)), ring_(std::move(ring)),
      theirs_(static_cast<size_t>(comm.size()), 1), lastName_(lastName) {
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
  mine_ = ok ? 1 : 0;
  ex_ = std::make_unique<DirectExchange>(comm_);
  for (int q = 0; q < comm_.size(); ++q) {
    if (q == comm_.rank()) continue;
    ex_->send(q, &mine_, 1);
    ex_->recv(q, &theirs_[static_cast<size_t>(q)], 1);
  }
}

void StagedOp::afterFirst() {
  synced();
  const bool all = mine_ == 1 && std::all_of(theirs_.begin(), theirs_.end(),
                                             [](unsigned char f) { return f == 1; });
  if (!all) {
    state_ = State::kRing;
  } else if (middle_) {
    run(middle_, "reduce");
    post(true);
    state_ = State::kSecond;
  } else {
    run(last_, lastName_);
    state_ = State::kDone;
  }
}

bool StagedOp::tryFinish() {
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

void StagedOp::finish() {
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
  StagedCall call{comm.shm(), 0, false, {}};
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
  for (size_t i = 0; i < count; i += kChunkElems) {
    const size_t m = std::min(kChunkElems, count - i);
    unsigned char* to = stream ? chunk : dst + i * elem;
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
  }
}

}  // namespace nodeccl
