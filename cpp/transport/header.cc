// SPDX-License-Identifier: Apache-2.0
// Encoding and checking of the per-message header (see header.h for the format and its use).
#include "transport/header.h"

#include "common/bytes.h"
#include "common/dtype.h"
#include "common/error.h"

namespace nodeccl {
namespace {

constexpr uint8_t kNone8 = 0xff;  // dtype/op "does not apply" on the wire

uint8_t toWire(int code) { return code < 0 || code >= 0xff ? kNone8 : uint8_t(code); }
int fromWire(uint8_t b) { return b == kNone8 ? -1 : int(b); }

bool isCollective(OpKind k) { return k != OpKind::kPointToPoint; }

const char* dtypeText(int code) {
  return code >= 0 && code < kNumDataTypes ? dtypeName(DataType(code)) : "?";
}
const char* opText(int code) {
  return code >= 0 && code < kNumReduceOps ? reduceOpName(ReduceOp(code)) : "?";
}

// "allReduce (float32 sum of 4096 elements)", or just "barrier".
std::string describeCall(OpKind kind, const OpParams& p) {
  std::string d = describeParams(kind, p);
  return d.empty() ? opKindName(kind) : strcat(opKindName(kind), " (", d, ")");
}

bool sameParams(const OpParams& a, const OpParams& b) {
  return a.dtype == b.dtype && a.op == b.op && a.root == b.root && a.count == b.count;
}

}  // namespace

uint64_t MessageSteps::forSend(const OpInfo& op, int peer) {
  return isCollective(op.kind) ? op.step : ++sent_.at(size_t(peer));
}

uint64_t MessageSteps::forRecv(const OpInfo& op, int peer) {
  return isCollective(op.kind) ? op.step : ++received_.at(size_t(peer));
}

void encodeHeader(unsigned char* out, const OpInfo& op, int from, uint64_t step,
                  uint64_t bytes) {
  putU32(out, kHeaderMagic);
  out[4] = static_cast<unsigned char>(op.kind);
  out[5] = toWire(op.params.dtype);
  out[6] = toWire(op.params.op);
  out[7] = 0;
  putU32(out + 8, static_cast<uint32_t>(op.params.root));
  putU32(out + 12, static_cast<uint32_t>(from));
  putU64(out + 16, step);
  putU64(out + 24, op.params.count);
  putU64(out + 32, bytes);
}

MessageHeader decodeHeader(const unsigned char* in) {
  MessageHeader h;
  h.magic = getU32(in);
  h.kind = static_cast<OpKind>(in[4]);
  h.params.dtype = fromWire(in[5]);
  h.params.op = fromWire(in[6]);
  h.params.root = static_cast<int32_t>(getU32(in + 8));
  h.from = static_cast<int32_t>(getU32(in + 12));
  h.step = getU64(in + 16);
  h.params.count = getU64(in + 24);
  h.bytes = getU64(in + 32);
  return h;
}

std::string opLabel(const OpInfo& op) {
  return strcat(opKindName(op.kind), " #", isCollective(op.kind) ? op.step : op.seq);
}

std::string describeParams(OpKind kind, const OpParams& p) {
  if (p.dtype < 0 && p.op < 0 && p.root < 0 && p.count == 0) return "";
  const std::string elems = strcat(p.count, p.count == 1 ? " element" : " elements");
  const std::string root = p.root >= 0 ? strcat(", root ", p.root) : "";
  switch (kind) {
    case OpKind::kAllReduce:
    case OpKind::kReduce:
    case OpKind::kReduceScatter:
      return strcat(dtypeText(p.dtype), " ", opText(p.op), " of ", elems, root);
    case OpKind::kAllGather: return strcat(p.count, " ", dtypeText(p.dtype), " per rank");
    default: return strcat(p.count, " ", dtypeText(p.dtype), root);
  }
}

// The checks run from the most to the least fundamental disagreement, so that the message
// names the real cause: a wrong stream, a different call, different params, then sizes.
void checkHeader(const unsigned char* in, const OpInfo& op, int rank, int peer,
                 uint64_t expectStep, uint64_t expectBytes) {
  const MessageHeader h = decodeHeader(in);
  // Every message passes here: the texts below are built only on the way to a throw (built for
  // every message they cost 0.3-2 us each, most of a small collective's time over shm).
  if (h.magic == kHeaderMagic && h.from == peer && h.kind == op.kind && h.step == expectStep &&
      sameParams(h.params, op.params) && h.bytes == expectBytes) {
    return;
  }
  const std::string me = strcat("rank ", rank, ": ");
  if (h.magic != kHeaderMagic || h.from != peer) {
    throw Error(ErrorCode::kIo,
                strcat(me, opLabel(op), " read a corrupt message header from rank ", peer,
                       " (magic 0x", std::hex, h.magic, std::dec, ", sender ", h.from,
                       "); the stream is out of step, probably after an earlier error: create "
                       "a new communicator"));
  }
  const std::string mine = describeCall(op.kind, op.params);
  const std::string theirs = describeCall(h.kind, h.params);
  if (h.kind != op.kind && h.step == expectStep && isCollective(h.kind) == isCollective(op.kind)) {
    throw Error(ErrorCode::kMismatch,
                strcat(me, "collective #", expectStep, ": rank ", peer, " called ", theirs,
                       ", this rank called ", mine, "; all ranks must call the same collectives "
                       "in the same order"));
  }
  if (h.kind != op.kind || h.step != expectStep) {
    throw Error(ErrorCode::kMismatch,
                strcat(me, opLabel(op), " (", mine, ") received rank ", peer, "'s message of ",
                       opKindName(h.kind), " #", h.step, " (", theirs, "); the ranks are out of "
                       "step: one skipped or repeated a call, mixed send/recv with collectives "
                       "differently, or passed different roots to a collective that then left "
                       "messages unread"));
  }
  if (!sameParams(h.params, op.params)) {
    const bool p2p = !isCollective(op.kind);
    throw Error(ErrorCode::kMismatch,
                strcat(me, opLabel(op), ": rank ", peer, " sent ", describeParams(h.kind, h.params),
                       ", this rank expects ", describeParams(op.kind, op.params),
                       p2p ? "; send and recv must pass the same count and dtype"
                           : "; all ranks must pass the same count, dtype, op and root"));
  }
  if (h.bytes != expectBytes) {
    throw Error(ErrorCode::kMismatch,
                strcat(me, opLabel(op), ": rank ", peer, " sent a message of ", h.bytes,
                       " bytes, this rank expects ", expectBytes, " at this point; ranks with "
                       "the same call chose different algorithms or transports: give every "
                       "rank the same NODECCL_* settings"));
  }
}

}  // namespace nodeccl
