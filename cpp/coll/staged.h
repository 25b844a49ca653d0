// SPDX-License-Identifier: Apache-2.0
// The staged algorithms (allreduce_staged.cc, reduce_scatter_staged.cc, allgather_staged.cc,
// broadcast_staged.cc), for communicators whose ranks all share one host's memory. Each rank
// copies what its peers need into its own shared window (transport/shm/shm_transport.h), and
// the peers read it there, in place: one copy into shared memory and one out of it, where the
// ring moves every byte through a pair's ring buffer (a copy in and a copy out) at each of its
// steps, with flow control between them.
//
// A staged call (StagedOp) is local work separated by one or two flag exchanges: one small
// message to and from every peer through the rings, so each carries the usual header (a rank
// that called another collective, count or dtype fails with kMismatch) and waits with the
// transport's timeout, liveness check and abort. The first flag is whether the rank could back
// its window with memory: when any rank could not, every rank runs the collective's ring
// algorithm instead, in the same call (so all ranks always agree on the algorithm). Like the
// direct algorithms (direct.h), a StagedOp can be driven without blocking, so the binding can
// run it on the calling thread when the peers are there (no thread hop either way).
//
// Safety rules every staged algorithm keeps:
// - The caller's output is written only after the last exchange, from data that is then in
//   shared memory (or this rank's own input): nothing after it can fail, so a call that fails
//   leaves the output as it was, even when a peer dies.
// - Arrays the user allocated from a shared heap (transport/shm/shared_heap.h) are not staged:
//   each rank says in its first flag where its array lies in its heap (StagedShared), and the
//   peers read it, or write it (allreduce_shared.cc), in place. A rank that gives up on such a
//   call sets its heap's gaveUp word before it returns; a peer checks that word after reading
//   and before each chunk it writes, so it never takes data the owner may already be changing.
//   A collective whose last work reads shared arrays (broadcast, all-gather, reduce-scatter)
//   gets one more flag exchange after it, so no owner returns while a peer still reads.
//   LIMITATION: a failed all-reduce may leave partial results in shared arrays, since peers
//   write into them before the last exchange; the error says so, and the array must be
//   refilled. When a call reads shared arrays into a rank's output and then fails, that
//   output may have been overwritten (also said).
// - A call writes only half h = shm.nextWindowHalf() of its own window. Peers may read it until
//   they return from that call; the next staged call writes the other half, and the one after
//   cannot start writing half h before every peer has passed an exchange of the call between,
//   so no write meets a read.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "coll/direct.h"
#include "coll/validate.h"
#include "comm/communicator.h"
#include "common/dtype.h"
#include "common/error.h"
#include "transport/shm/shm_transport.h"

namespace nodeccl {

// Whether the collectives take their staged algorithm for this call: NODECCL_ALGO=staged, or
// auto for the sizes the collective does not give to its direct algorithm, on a communicator
// with shared windows. Call it after the direct algorithm's check.
bool usesStaged(const Communicator& comm);

// Where the ranks' arrays of one staged call lie in their shared heaps: this rank's heap
// offset (-1: not a shared array), then, once the first exchange has told, every rank's array
// as mapped in this process (null where that rank's is not shared).
struct StagedShared {
  int64_t mine = -1;
  bool written = false;  // peers write into shared arrays when all are (all-reduce)
  uint64_t call = 0;     // the call's number (StagedCall::id), what gaveUp words hold
  std::vector<unsigned char*> at;
  bool all() const;
  bool any() const;
  // Throws kAborted when shared rank q has given up on this call (see the safety rules).
  void checkPeer(const Communicator& comm, int q, const char* doing) const;
};

// A staged call in progress: the flag exchanges and the work between and after them.
class StagedOp : public SteppedOp {
 public:
  // `comm`'s operation has begun and this rank has staged its data (when `ok`). `middle`: the
  // work between the two exchanges (empty: one exchange only); `last`: the work after the last
  // one (it cannot fail); `ring`: the collective's ring algorithm, which finish() runs instead
  // when some rank could not stage (tryFinish then returns false: it blocks).
  // `lastName` names the last work in a NODECCL_TRACE timeline ("copy out", "reduce").
  // `shared` (may be null): filled in after the first exchange, for work that reads shared
  // arrays in place.
  StagedOp(Communicator& comm, bool ok, std::function<void()> middle, std::function<void()> last,
           std::function<void()> ring, const char* lastName,
           std::shared_ptr<StagedShared> shared = nullptr);
  bool tryFinish() override;
  void finish() override;

 private:
  bool tryFinishImpl();
  void finishImpl();
  [[noreturn]] void failed(const Error& e);  // marks gaveUp, rethrows naming shared arrays
  void markGaveUp();                         // when this rank's array is shared
  enum class State { kFirst, kSecond, kRing, kDone };
  void post(bool ok);    // the next flag exchange
  void afterFirst();     // kFirst -> kSecond, kRing or kDone
  void run(const std::function<void()>& work, const char* name);  // traced when tracing
  void synced();         // traces the flag exchange that just completed

  Communicator& comm_;
  std::function<void()> middle_, last_, ring_;
  std::shared_ptr<StagedShared> shared_;
  bool wrote_ = false;  // the last work ran before a final exchange (shared arrays were read)
  std::unique_ptr<DirectExchange> ex_;
  struct Flag {
    int64_t ok;      // 1: this rank could stage
    int64_t shared;  // heap offset of its shared array, or -1
  };
  Flag mine_{0, -1};
  std::vector<Flag> theirs_;
  State state_ = State::kFirst;
  const char* lastName_;
  std::chrono::steady_clock::time_point posted_;  // when the current exchange was posted
};

// The staged collectives: check the arguments as their collectives do, begin the operation,
// stage this rank's part and return the call, which the caller then drives (tryFinish until
// true, or finish).
std::unique_ptr<StagedOp> startAllReduceStaged(Communicator& comm, void* data, size_t count,
                                               DataType dtype, ReduceOp op, Millis timeout);
std::unique_ptr<StagedOp> startReduceScatterStaged(Communicator& comm, const void* in,
                                                   void* out, size_t count, DataType dtype,
                                                   ReduceOp op, Millis timeout);
std::unique_ptr<StagedOp> startAllGatherStaged(Communicator& comm, const void* in, void* out,
                                               size_t count, DataType dtype, Millis timeout);
std::unique_ptr<StagedOp> startBroadcastStaged(Communicator& comm, void* data, size_t count,
                                               DataType dtype, int root, Millis timeout);

// All-reduce in place on every rank's shared array (allreduce_shared.cc): the work between
// the staged all-reduce's exchanges when every rank's buffer is shared.
void allReduceSharedPush(Communicator& comm, const StagedShared& shared, size_t count,
                         DataType dtype, ReduceOp op);

// ---- building blocks of the algorithm files ------------------------------------------------

// Begins a staged call: the window half it uses, and whether this rank backed `bytes` of it
// (when not, the reason is logged at info and the call falls back once every rank knows).
struct StagedCall {
  ShmTransport* shm;
  int half;
  bool ok;
  std::chrono::steady_clock::time_point began;
  uint64_t id;  // the staged calls this rank started before this one (the same on all ranks)
};
StagedCall beginStaged(Communicator& comm, size_t bytes);
// Where `p` (`bytes`) lies in this rank's shared heap, as StagedShared::mine (-1: not there).
int64_t sharedOffset(const Communicator& comm, const void* p, size_t bytes);
// Traces the staging copies of `call` (from its beginning until now) when tracing.
void traceStaging(Communicator& comm, const StagedCall& call, size_t bytes);

// A caller's buffer as bytes, a null one (0 elements) replaced as orEmpty (validate.h) does,
// but by a byte that outlives the call: a StagedOp's work runs after its start returns.
inline unsigned char* stagedBytes(void* p) {
  static unsigned char empty = 0;
  return static_cast<unsigned char*>(orEmpty(p, empty));
}
inline const unsigned char* stagedBytes(const void* p) {
  return stagedBytes(const_cast<void*>(p));
}

// Whether a staged call in which each rank touches `bytesPerRank` (its input, output and
// window) copies with streaming stores (reduce/copy.h): when all ranks together touch more
// than the cache holds. Then stagedCopy and reduceBlocksTo write around the cache; otherwise
// they use plain stores, and a peer finds the data in the shared cache. Count both halves of
// a window: back-to-back calls alternate them, so both stay in the cache's working set (a
// 16 MiB broadcast at 2 ranks that counted one half kept plain stores: 6 GB/s instead of 9).
bool stagedStreams(const Communicator& comm, size_t bytesPerRank);
void stagedCopy(void* dst, const void* src, size_t bytes, bool stream);

// Reduces n blocks (count elements of dtype each, in rank order 0..n-1) into `out`, which may
// be one of them (then through scratch): chunk by chunk, so each chunk of the result stays in
// cache while every block is added to it; float16/bfloat16 through float32 and rounded once;
// avg divided once.
// Every rank that reduces the same blocks gets bitwise the same result.
void reduceBlocksTo(Communicator& comm, const std::vector<const void*>& blocks, void* out,
                    size_t count, DataType dtype, ReduceOp op, bool stream);

}  // namespace nodeccl
