// SPDX-License-Identifier: Apache-2.0
// Argument checks shared by the collectives (see validate.h).
#include "coll/validate.h"

#include <cstdint>
#include <limits>

#include "common/error.h"
#include "common/log.h"

namespace nodeccl {
namespace {

[[noreturn]] void invalid(const Communicator& comm, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, strcat("rank ", comm.rank(), ": ", what));
}

}  // namespace

void checkDtype(const Communicator& comm, const char* coll, DataType dtype) {
  int d = static_cast<int>(dtype);
  if (d >= 0 && d < kNumDataTypes) return;
  invalid(comm, strcat(coll, " dtype ", d, " is not a known dtype; pass one of 0..",
                       kNumDataTypes - 1,
                       " (float32, float64, int32, int8, uint8, float16, bfloat16)"));
}

void checkOp(const Communicator& comm, const char* coll, ReduceOp op) {
  int o = static_cast<int>(op);
  if (o >= 0 && o < kNumReduceOps) return;
  invalid(comm, strcat(coll, " op ", o, " is not a known reduce op; pass one of 0..",
                       kNumReduceOps - 1, " (sum, prod, min, max, avg)"));
}

size_t checkedBytes(const Communicator& comm, const char* coll, size_t count, size_t elemBytes,
                    size_t blocks) {
  const size_t kMax = std::numeric_limits<size_t>::max();
  bool overflows = elemBytes != 0 && count > kMax / elemBytes;
  if (!overflows && blocks != 0 && count * elemBytes > kMax / blocks) overflows = true;
  if (!overflows) return blocks * count * elemBytes;
  invalid(comm, strcat(coll, " count ", count, " x ", elemBytes, " bytes",
                       blocks > 1 ? strcat(" x ", blocks, " ranks") : std::string(),
                       " overflows the address space; pass a smaller count"));
}

void checkBuffer(const Communicator& comm, const char* coll, const char* arg, const void* data,
                 size_t count) {
  if (data != nullptr || count == 0) return;
  invalid(comm, strcat(coll, " ", arg, " is null but count is ", count,
                       "; pass a buffer of at least that many elements"));
}

void checkPartOfWhole(const Communicator& comm, const char* coll, const char* partArg,
                      const void* part, const char* wholeArg, const void* whole, size_t block) {
  const auto p = reinterpret_cast<uintptr_t>(part), w = reinterpret_cast<uintptr_t>(whole);
  const size_t r = static_cast<size_t>(comm.rank());
  const size_t wholeBytes = block * static_cast<size_t>(comm.size());
  if (block == 0 || p + block <= w || w + wholeBytes <= p || p == w + r * block) return;
  const std::string where = p >= w ? strcat("starts ", p - w, " bytes into ", wholeArg)
                                   : strcat("starts ", w - p, " bytes before ", wholeArg);
  invalid(comm, strcat(coll, " ", partArg, " (", block, " bytes) overlaps ", wholeArg, " (",
                       wholeBytes, " bytes) but is not its block ", r, " (", partArg, " ", where,
                       ", where block ", r, " starts ", r * block, " bytes in); pass separate ",
                       "arrays, or for an in-place call ", wholeArg, ".subarray(", r,
                       " * n, ", r + 1, " * n) as ", partArg, ", n its element count"));
}

void checkRoot(const Communicator& comm, const char* coll, int root) {
  if (root >= 0 && root < comm.size()) return;
  invalid(comm, strcat(coll, " root ", root, " is out of range for a world of ", comm.size(),
                       " ranks; pass a root in 0..", comm.size() - 1));
}

void checkPeer(const Communicator& comm, const char* coll, int peer) {
  if (peer == comm.rank() && comm.size() == 1) {
    invalid(comm, strcat(coll, " peer ", peer, " is this rank itself and a world of 1 rank has",
                         " no other; point-to-point needs at least 2 ranks"));
  }
  if (peer == comm.rank()) {
    invalid(comm, strcat(coll, " peer ", peer, " is this rank itself; pass another rank in 0..",
                         comm.size() - 1, " (a rank cannot send to or receive from itself)"));
  }
  if (peer >= 0 && peer < comm.size()) return;
  invalid(comm, strcat(coll, " peer ", peer, " is out of range for a world of ", comm.size(),
                       " ranks; pass a peer in 0..", comm.size() - 1));
}

size_t beginBroadcast(Communicator& comm, void* data, size_t count, DataType dtype, int root,
                      Millis timeout, const char* algo) {
  const char* kName = "broadcast";
  checkDtype(comm, kName, dtype);
  checkRoot(comm, kName, root);
  const size_t bytes = checkedBytes(comm, kName, count, dtypeSize(dtype));
  checkBuffer(comm, kName, "data", data, count);
  comm.beginOp(OpKind::kBroadcast, timeout, OpParams{int(dtype), -1, root, count});
  comm.noteAlgorithm("broadcast", algo, bytes);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "broadcast ", algo, " count=", count, " ",
                dtypeName(dtype), " root=", root);
  return bytes;
}

}  // namespace nodeccl
