// SPDX-License-Identifier: Apache-2.0
// Direct barrier: every rank sends an empty message to every other rank and waits for one from
// each; no rank leaves before every rank arrived.
//
// Cost, for n ranks: one round; each rank sends and receives n - 1 messages of 0 payload bytes
// (a header each). Over shared memory they are all in flight at once, so it takes one latency
// where the dissemination barrier takes ceil(log2 n); chosen there for up to kDirectMaxRanks.
// Over TCP the exchanges run one after another (n - 1 steps), so the dissemination barrier
// stays the choice there unless NODECCL_ALGO=direct.
#include <memory>

#include "coll/direct.h"
#include "common/log.h"

namespace nodeccl {
namespace {

// Beyond this many ranks the n - 1 headers each rank writes and polls outweigh the rounds saved.
constexpr int kDirectMaxRanks = 16;

}  // namespace

bool barrierUsesDirect(const Communicator& comm) {
  const std::string& algo = comm.options().algo;
  if (algo == "direct") return true;
  if (algo != "auto") return false;
  return comm.shm() != nullptr && comm.size() <= kDirectMaxRanks;
}

std::unique_ptr<DirectExchange> startBarrierDirect(Communicator& comm, Millis timeout) {
  comm.beginOp(OpKind::kBarrier, timeout);
  comm.noteAlgorithm("barrier", "direct", 0);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "barrier direct");
  auto ex = std::make_unique<DirectExchange>(comm);
  for (int q = 0; q < comm.size(); ++q) {
    if (q == comm.rank()) continue;
    ex->send(q, nullptr, 0);
    ex->recv(q, nullptr, 0);
  }
  return ex;
}

}  // namespace nodeccl
