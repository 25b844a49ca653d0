// SPDX-License-Identifier: Apache-2.0
// Batched point-to-point: several sends and receives with any peers, scheduled so that they
// cannot deadlock whatever order the ranks listed them in.
//
// LIMITATION: the peer must call batchSendRecv too; its messages carry no dtype or count, so a
// plain recv fails with kMismatch (a clear run-time error from the transport).
//
// Schedule: n - 1 steps by distance. At step s (1..n-1) this rank sends, in list order, its
// messages for rank + s, while receiving, in list order, those from rank - s, pairing the j-th
// send with the j-th receive in one full-duplex exchange. Rank + s is at the same step
// receiving from this rank, so every exchange has its partner in the same step, as in a ring
// step, and no rank waits for one that is waiting for it. Messages to this rank itself are
// copied. Cost: each message travels once; steps with nothing to exchange cost nothing.
// Receives land in scratch and are copied out at the end, so a failed call leaves the receive
// buffers unchanged.
#include <algorithm>
#include <cstring>

#include "coll/collectives.h"
#include "coll/ring.h"
#include "common/error.h"
#include "common/log.h"

namespace nodeccl {
namespace {

void checkEntry(const Communicator& comm, const char* list, size_t i, int peer,
                const void* data, size_t bytes) {
  const int n = comm.size();
  if (peer < 0 || peer >= n) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("rank ", comm.rank(), ": batchSendRecv ", list, "[", i, "] peer ", peer,
                       " is out of range for a world of ", n, " ranks; pass a peer in 0..",
                       n - 1));
  }
  if (data == nullptr && bytes > 0) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("rank ", comm.rank(), ": batchSendRecv ", list, "[", i, "] is null but ",
                       "holds ", bytes, " bytes; pass a buffer"));
  }
}

}  // namespace

void batchSendRecv(Communicator& comm, const std::vector<P2PSend>& sends,
                   const std::vector<P2PRecv>& recvs, Millis timeout) {
  const int n = comm.size(), r = comm.rank();
  // Per-peer lists in the caller's order, and each receive's place in scratch.
  std::vector<std::vector<size_t>> sendTo(n), recvFrom(n);
  for (size_t i = 0; i < sends.size(); ++i) {
    checkEntry(comm, "sends", i, sends[i].peer, sends[i].data, sends[i].bytes);
    sendTo[sends[i].peer].push_back(i);
  }
  std::vector<size_t> at(recvs.size() + 1, 0);
  for (size_t i = 0; i < recvs.size(); ++i) {
    checkEntry(comm, "recvs", i, recvs[i].peer, recvs[i].data, recvs[i].bytes);
    recvFrom[recvs[i].peer].push_back(i);
    at[i + 1] = at[i] + recvs[i].bytes;
  }
  // Sends to itself are copied to its own receives, which must pair up one to one.
  const auto& selfS = sendTo[r];
  const auto& selfR = recvFrom[r];
  if (selfS.size() != selfR.size()) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("rank ", r, ": batchSendRecv lists ", selfS.size(), " send(s) to this ",
                       "rank itself but ", selfR.size(), " receive(s) from it; pair them up"));
  }
  for (size_t j = 0; j < selfS.size(); ++j) {
    if (sends[selfS[j]].bytes != recvs[selfR[j]].bytes) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat("rank ", r, ": batchSendRecv sends[", selfS[j], "] to itself holds ",
                         sends[selfS[j]].bytes, " bytes but its receive recvs[", selfR[j],
                         "] holds ", recvs[selfR[j]].bytes, "; make them the same size"));
    }
  }
  // No common count: each message's size is checked against its receive by the transport.
  comm.beginOp(OpKind::kPointToPoint, timeout);
  NODECCL_TRACE("coll", r, n, "batchSendRecv ", sends.size(), " sends, ", recvs.size(),
                " receives");

  unsigned char* work = scratchBytes(comm, at.back(), kSlotOut);
  unsigned char empty = 0;
  for (size_t j = 0; j < selfS.size(); ++j) {
    const P2PSend& s = sends[selfS[j]];
    if (s.bytes > 0) std::memcpy(work + at[selfR[j]], s.data, s.bytes);
  }
  for (int step = 1; step < n; ++step) {
    const int to = (r + step) % n, from = (r - step + n) % n;
    const auto& out = sendTo[to];
    const auto& in = recvFrom[from];
    for (size_t j = 0; j < std::max(out.size(), in.size()); ++j) {
      const P2PSend* s = j < out.size() ? &sends[out[j]] : nullptr;
      const size_t ri = j < in.size() ? in[j] : 0;
      const P2PRecv* rv = j < in.size() ? &recvs[ri] : nullptr;
      comm.sendRecv(s ? to : -1, s && s->bytes > 0 ? s->data : &empty, s ? s->bytes : 0,
                    rv ? from : -1, rv && rv->bytes > 0 ? work + at[ri] : &empty,
                    rv ? rv->bytes : 0);
    }
  }
  for (size_t i = 0; i < recvs.size(); ++i) {
    if (recvs[i].bytes > 0) std::memcpy(recvs[i].data, work + at[i], recvs[i].bytes);
  }
}

}  // namespace nodeccl
