// SPDX-License-Identifier: Apache-2.0
// Direct all-gather, the small-message path: every rank sends its block to every other rank
// and receives the n - 1 other blocks straight into their places in the output.
//
// Cost, for n ranks and an output of S bytes (n blocks of S/n): one round (n - 1 exchanges,
// all in flight at once through shared memory); each rank sends and receives (n - 1)/n * S
// bytes, as the ring does, but in one latency instead of n - 1. Over TCP the exchanges run one
// after another (n - 1 steps, like the ring). Used up to kDirectMaxBytes of output; above it
// the ring's neighbour-only traffic is kinder to the caches and the rings of the transport.
//
// Received blocks land in scratch memory and everything is copied into the output at the end
// (one extra pass over S, small at these sizes), so a call that fails leaves the output as it
// was.
#include <cstring>
#include <memory>

#include "coll/direct.h"
#include "coll/ring.h"
#include "coll/validate.h"
#include "common/log.h"

namespace nodeccl {
namespace {

constexpr size_t kDirectMaxBytes = 256 * 1024;

}  // namespace

bool allGatherUsesDirect(const Communicator& comm, size_t count, DataType dtype) {
  const std::string& algo = comm.options().algo;
  if (algo == "direct") return true;
  if (algo == "ring" || algo == "staged") return false;
  return count * dtypeSize(dtype) * static_cast<size_t>(comm.size()) <= kDirectMaxBytes;
}

std::unique_ptr<DirectExchange> startAllGatherDirect(Communicator& comm, const void* in,
                                                     void* out, size_t count, DataType dtype,
                                                     Millis timeout) {
  const char* kName = "allGather";
  checkDtype(comm, kName, dtype);
  const size_t block = count * dtypeSize(dtype);
  const size_t n = static_cast<size_t>(comm.size());
  const size_t total = checkedBytes(comm, kName, count, dtypeSize(dtype), n);
  checkBuffer(comm, kName, "input", in, count);
  checkBuffer(comm, kName, "output", out, count);
  checkPartOfWhole(comm, kName, "input", in, "output", out, count * dtypeSize(dtype));
  comm.beginOp(OpKind::kAllGather, timeout, OpParams{int(dtype), -1, -1, count});
  comm.noteAlgorithm("allGather", "direct", total);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "allGather direct count=", count, " ",
                dtypeName(dtype));

  auto ex = std::make_unique<DirectExchange>(comm);
  auto* base = static_cast<unsigned char*>(out);
  unsigned char* staged = scratchBytes(comm, total, kSlotRecvA);
  const int me = comm.rank();
  for (int q = 0; q < comm.size(); ++q) {
    if (q == me) continue;
    ex->send(q, in, block);
    ex->recv(q, block > 0 ? staged + block * size_t(q) : nullptr, block);
  }
  // Only once every block is in: this rank's own (`in` may already be it: in place), then the
  // others from scratch.
  ex->onComplete([base, staged, in, block, n, me] {
    if (block == 0) return;
    unsigned char* own = base + block * size_t(me);
    if (own != in) std::memmove(own, in, block);
    for (size_t q = 0; q < n; ++q) {
      if (q != size_t(me)) std::memcpy(base + block * q, staged + block * q, block);
    }
  });
  return ex;
}

}  // namespace nodeccl
