// SPDX-License-Identifier: Apache-2.0
// Direct broadcast, for tiny messages: the root sends its buffer to every other rank at once;
// every other rank receives it once, into scratch memory, and copies it into its buffer at the
// end (so a call that fails leaves the buffer as it was).
//
// Cost, for n ranks and S bytes: one round; the root sends (n - 1) * S bytes, every other rank
// receives S. One latency instead of the binomial tree's ceil(log2 n), for n - 1 copies on the
// root instead of ceil(log2 n): chosen while (n - 1) * S stays under kDirectMaxRootBytes. At
// two ranks it is the tree's one message, but it can complete without blocking (direct.h).
#include <cstring>
#include <memory>

#include "coll/direct.h"
#include "coll/ring.h"
#include "coll/validate.h"
#include "common/log.h"

namespace nodeccl {
namespace {

constexpr size_t kDirectMaxRootBytes = 64 * 1024;

}  // namespace

bool broadcastUsesDirect(const Communicator& comm, size_t count, DataType dtype) {
  const std::string& algo = comm.options().algo;
  if (algo == "direct") return true;
  if (algo == "chain" || algo == "tree" || algo == "ring" || algo == "staged") {
    return false;
  }
  return count * dtypeSize(dtype) * static_cast<size_t>(comm.size() - 1) <= kDirectMaxRootBytes;
}

std::unique_ptr<DirectExchange> startBroadcastDirect(Communicator& comm, void* data,
                                                     size_t count, DataType dtype, int root,
                                                     Millis timeout) {
  const size_t bytes = beginBroadcast(comm, data, count, dtype, root, timeout, "direct");

  auto ex = std::make_unique<DirectExchange>(comm);
  if (comm.rank() != root) {
    unsigned char* staged = scratchBytes(comm, bytes, kSlotRecvA);
    ex->recv(root, bytes > 0 ? staged : nullptr, bytes);
    ex->onComplete([data, staged, bytes] {
      if (bytes > 0) std::memcpy(data, staged, bytes);
    });
    return ex;
  }
  for (int q = 0; q < comm.size(); ++q) {
    if (q != root) ex->send(q, data, bytes);
  }
  return ex;
}

}  // namespace nodeccl
