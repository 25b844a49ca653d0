// SPDX-License-Identifier: Apache-2.0
// The direct (small-message) algorithms and the exchange they share. Each direct collective is
// one round: every message it needs is known when it starts, and none depends on another, so
// all of them can be in flight at once and the call costs one latency (plus the copies).
//
// A DirectExchange holds such a round: at most one send to and one receive from each peer, and
// the local work to do once every message has moved (reduce, copy into place). It can be
// driven two ways: to completion on the worker thread (finish, any transport), or without ever
// blocking (tryFinish, shared memory only), so that the binding can complete a tiny collective
// on the calling thread when the peers are already there and hand the rest to the worker.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "common/dtype.h"

namespace nodeccl {

// An operation that can be driven without blocking (tryFinish: true once done; false means
// "not yet", nothing lost) or to completion (finish), as the binding's fast path does.
class SteppedOp {
 public:
  virtual ~SteppedOp() = default;
  virtual bool tryFinish() = 0;
  virtual void finish() = 0;
};

class DirectExchange : public SteppedOp {
 public:
  // `comm`'s operation must have begun (beginOp). Messages are added before the first move.
  explicit DirectExchange(Communicator& comm);
  DirectExchange(const DirectExchange&) = delete;
  DirectExchange& operator=(const DirectExchange&) = delete;

  // One message to / from `peer` (not this rank; one each way per peer). A null buffer is
  // allowed for 0 bytes. The buffers must stay valid until the exchange is finished.
  void send(int peer, const void* buf, size_t bytes);
  void recv(int peer, void* buf, size_t bytes);
  // Local work run once, after every message has moved (not run if a move throws).
  void onComplete(std::function<void()> fn) { complete_ = std::move(fn); }

  // Moves every message that can move now without waiting; true once the whole operation is
  // done. Only over the shared-memory transport (else returns false and does nothing).
  bool tryFinish() override;

  // Completes the operation, blocking as needed (any transport). A no-op once done.
  void finish() override;

 private:
  struct Message {
    void* buf = nullptr;
    size_t bytes = 0;
    bool pending = false;
  };
  bool tryMove();
  void complete();

  Communicator& comm_;
  std::vector<Message> sends_, recvs_;  // by peer rank
  std::function<void()> complete_;
  unsigned char empty_ = 0;  // the address of 0-byte messages given a null buffer
  bool done_ = false;
};

// Reduces blocks[0..n) (count elements of dtype each, in rank order) into `out`, which may be
// one of them: float16/bfloat16 through float32 and rounded once, avg divided once. The order
// is fixed, so every rank that does it computes bitwise the same result. Uses scratch kSlotWork.
void reduceInRankOrder(Communicator& comm, const std::vector<const void*>& blocks, void* out,
                       size_t count, DataType dtype, ReduceOp op);

// ---- the direct collectives (one file each; costs there) ------------------------------------
// usesDirect: whether the collective takes its direct algorithm for this call (NODECCL_ALGO
// forces it with "direct" and forbids it with any other name; "auto" decides by size and world
// size). Call it with arguments the collective has checked.
// start: checks the arguments as the collective does (throwing the same errors), begins the
// operation and returns it; the caller must then finish it (tryFinish until true, or finish).

bool allReduceUsesDirect(const Communicator& comm, size_t count, DataType dtype);
std::unique_ptr<DirectExchange> startAllReduceDirect(Communicator& comm, void* data,
                                                     size_t count, DataType dtype, ReduceOp op,
                                                     Millis timeout);

bool allGatherUsesDirect(const Communicator& comm, size_t count, DataType dtype);
std::unique_ptr<DirectExchange> startAllGatherDirect(Communicator& comm, const void* in,
                                                     void* out, size_t count, DataType dtype,
                                                     Millis timeout);

bool reduceScatterUsesDirect(const Communicator& comm, size_t count, DataType dtype);
std::unique_ptr<DirectExchange> startReduceScatterDirect(Communicator& comm, const void* in,
                                                         void* out, size_t count,
                                                         DataType dtype, ReduceOp op,
                                                         Millis timeout);

bool broadcastUsesDirect(const Communicator& comm, size_t count, DataType dtype);
std::unique_ptr<DirectExchange> startBroadcastDirect(Communicator& comm, void* data,
                                                     size_t count, DataType dtype, int root,
                                                     Millis timeout);

bool barrierUsesDirect(const Communicator& comm);
std::unique_ptr<DirectExchange> startBarrierDirect(Communicator& comm, Millis timeout);

}  // namespace nodeccl
