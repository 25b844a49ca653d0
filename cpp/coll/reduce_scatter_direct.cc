// SPDX-License-Identifier: Apache-2.0
// Direct reduce-scatter, the small-message path: rank j's block of every rank's input goes
// straight to rank j, which reduces the n blocks in rank order 0..n-1 (float16/bfloat16
// through float32, rounded once; avg divided once), so each block's result is bitwise what
// the direct all-reduce computes for it.
//
// Cost, for n ranks and an input of S bytes per rank (n blocks of S/n): one round (n - 1
// exchanges, all in flight at once through shared memory); each rank sends and receives
// (n - 1)/n * S bytes and reduces as many, as the ring does, but in one latency instead of
// n - 1, and half types travel as themselves (the ring sends float32 partials, twice the
// bytes). Over TCP the exchanges run one after another. Used up to kDirectMaxBytes of input.
//
// `out` is written once, at the end, and `in` never: a call that fails leaves both unchanged.
#include <memory>
#include <vector>

#include "coll/direct.h"
#include "coll/ring.h"
#include "coll/validate.h"
#include "common/log.h"

namespace nodeccl {
namespace {

constexpr size_t kDirectMaxBytes = 256 * 1024;

}  // namespace

bool reduceScatterUsesDirect(const Communicator& comm, size_t count, DataType dtype) {
  const std::string& algo = comm.options().algo;
  if (algo == "direct") return true;
  if (algo == "ring" || algo == "staged") return false;
  return count * dtypeSize(dtype) * static_cast<size_t>(comm.size()) <= kDirectMaxBytes;
}

std::unique_ptr<DirectExchange> startReduceScatterDirect(Communicator& comm, const void* in,
                                                         void* out, size_t count,
                                                         DataType dtype, ReduceOp op,
                                                         Millis timeout) {
  const char* kName = "reduceScatter";
  checkDtype(comm, kName, dtype);
  checkOp(comm, kName, op);
  const size_t n = static_cast<size_t>(comm.size());
  // As the ring checks it: the float32 working copy of half types must not overflow either.
  checkedBytes(comm, kName, count, dtypeSize(accumulateType(dtype)), n);
  checkBuffer(comm, kName, "input", in, count);
  checkBuffer(comm, kName, "output", out, count);
  checkPartOfWhole(comm, kName, "output", out, "input", in, count * dtypeSize(dtype));
  comm.beginOp(OpKind::kReduceScatter, timeout, OpParams{int(dtype), int(op), -1, count});
  const size_t block = count * dtypeSize(dtype);
  comm.noteAlgorithm("reduceScatter", "direct", block * n);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "reduceScatter direct count=", count, " ",
                dtypeName(dtype), " ", reduceOpName(op));

  // Block q of `in` goes to rank q; rank q's contribution to this rank's block arrives in
  // scratch block q. This rank's own contribution is read from `in` in place.
  auto ex = std::make_unique<DirectExchange>(comm);
  const auto* src = static_cast<const unsigned char*>(in);
  unsigned char* recvd = scratchBytes(comm, block * n, kSlotRecvA);
  std::vector<const void*> blocks(n);
  for (int q = 0; q < comm.size(); ++q) {
    const size_t at = block * size_t(q);
    if (q == comm.rank()) {
      blocks[size_t(q)] = block > 0 ? src + at : nullptr;
      continue;
    }
    blocks[size_t(q)] = recvd + at;
    ex->send(q, block > 0 ? src + at : nullptr, block);
    ex->recv(q, recvd + at, block);
  }
  Communicator* c = &comm;
  ex->onComplete([c, blocks, out, count, dtype, op] {
    reduceInRankOrder(*c, blocks, out, count, dtype, op);
  });
  return ex;
}

}  // namespace nodeccl
