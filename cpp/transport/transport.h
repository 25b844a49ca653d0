// SPDX-License-Identifier: Apache-2.0
// The interface every transport implements: move bytes between this rank and its peers.
// A transport knows nothing of collectives; algorithms in coll/ are written on top of
// Communicator::sendRecv, which forwards here with the current operation's context.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace nodeccl {

// Which operation a message belongs to. Sent in every message header so that ranks calling
// different operations at the same step get kMismatch instead of a silent wrong answer.
enum class OpKind : uint8_t {
  kNone = 0,
  kAllReduce = 1,
  kBroadcast = 2,
  kReduce = 3,
  kAllGather = 4,
  kReduceScatter = 5,
  kBarrier = 6,
  kPointToPoint = 7,
  kInternal = 8,  // setup traffic
  kAllToAll = 9,
  kGather = 10,
  kScatter = 11,
};

const char* opKindName(OpKind kind);

// What a collective call was asked to do, as every rank must agree on it; carried in every
// message header (transport/header.h) and compared by the receiver. -1: does not apply.
struct OpParams {
  int dtype = -1;      // DataType code
  int op = -1;         // ReduceOp code
  int root = -1;       // broadcast/reduce root
  uint64_t count = 0;  // elements per rank as the user passed them (the same on every rank)
};

// The context of the operation in progress on this rank.
struct OpInfo {
  OpKind kind = OpKind::kNone;
  uint64_t seq = 0;   // this rank's operation number (collectives and send/recv), for messages
  uint64_t step = 0;  // collectives begun so far (send/recv not counted): equal on every rank
  OpParams params;
  std::chrono::steady_clock::time_point deadline;
  uint32_t timeoutMs = 0;  // for messages
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual const char* name() const = 0;

  // Sends `sbytes` from `sbuf` to `sendPeer` while receiving exactly `rbytes` into `rbuf` from
  // `recvPeer`, progressing both at once (so a ring step cannot deadlock); returns when both
  // are complete. A peer of -1 means no message in that direction; 0-byte messages are still
  // exchanged (they carry a header). Throws kPeerLost, kTimeout (op.deadline), kMismatch (the
  // header's kind or byte count differ from what this rank expects), or kAborted.
  virtual void sendRecv(int sendPeer, const void* sbuf, size_t sbytes, int recvPeer, void* rbuf,
                        size_t rbytes, const OpInfo& op) = 0;

  // Thread-safe. Makes a blocked or later sendRecv throw kAborted with `reason`.
  virtual void abort(const std::string& reason) = 0;

  // Closes every connection. Not thread-safe with sendRecv: call after the worker is idle.
  virtual void close() = 0;
};

}  // namespace nodeccl
