// SPDX-License-Identifier: Apache-2.0
// The header every transport puts before every message, and its check on the receiving side:
// ranks that call different collectives, counts, dtypes, ops or roots at the same step fail
// with kMismatch naming the step, both sides' values and both ranks, never a silent wrong sum.
//
// How to use it (transports and algorithms):
// - Algorithms (coll/*) describe the call with
//     comm.beginOp(OpKind::kAllReduce, timeout, OpParams{int(dtype), int(op), -1, count});
//   `count` is the per-rank element count the user passed, the same on every rank (allGather:
//   the input's; reduceScatter: the output's; send/recv: the message's). Fields that do not
//   apply stay -1 (dtype, op, root). The old beginOp(kind, timeout) still works; it leaves the
//   params unset, which disables only the params comparison.
// - A transport keeps a MessageSteps per communicator, writes encodeHeader(...) before each
//   payload with steps.forSend(op, peer), and on receipt calls checkHeader(...) with
//   steps.forRecv(op, peer) as soon as the kHeaderBytes have arrived, before touching the
//   payload's destination.
//
// Wire format, kHeaderBytes = 40, little-endian:
//   u32 magic "NCC2" | u8 kind | u8 dtype | u8 op | u8 0 | i32 root | u32 sender rank |
//   u64 step | u64 count (elements of the call) | u64 payload bytes of this message
// Cost: 40 bytes and a handful of compares per message; always on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "transport/transport.h"

namespace nodeccl {

constexpr size_t kHeaderBytes = 40;
constexpr uint32_t kHeaderMagic = 0x3243434e;  // "NCC2"

// A header as read from the wire.
struct MessageHeader {
  uint32_t magic = 0;
  OpKind kind = OpKind::kNone;
  OpParams params;
  int from = -1;        // the sender's rank
  uint64_t step = 0;    // collective step, or the per-peer point-to-point message number
  uint64_t bytes = 0;   // payload bytes following this header
};

// Numbers messages so that both sides of a connection agree on each message's step:
// collectives use op.step (the same on every rank); point-to-point messages are numbered per
// direction and peer (the n-th send to rank p meets rank p's n-th receive from this rank).
// Not thread-safe: one per transport, used by the thread driving the communicator.
class MessageSteps {
 public:
  explicit MessageSteps(int size) : sent_(size, 0), received_(size, 0) {}
  uint64_t forSend(const OpInfo& op, int peer);
  uint64_t forRecv(const OpInfo& op, int peer);

 private:
  std::vector<uint64_t> sent_, received_;
};

// Writes the header of a message of `bytes` payload bytes from rank `from` into out[0..40).
void encodeHeader(unsigned char* out, const OpInfo& op, int from, uint64_t step, uint64_t bytes);

MessageHeader decodeHeader(const unsigned char* in);

// Checks a received header against this rank's operation: throws kIo for a corrupt header,
// kMismatch (naming step, both ranks and both sides' values) for a different kind, step,
// dtype, op, root, count or message size.
void checkHeader(const unsigned char* in, const OpInfo& op, int rank, int peer,
                 uint64_t expectStep, uint64_t expectBytes);

// "allReduce #17" (collectives: the step; point-to-point: this rank's operation number).
std::string opLabel(const OpInfo& op);

// "float32 sum of 4096 elements", "root 0, 10 int32 elements", ...: a call's params.
std::string describeParams(OpKind kind, const OpParams& p);

}  // namespace nodeccl
