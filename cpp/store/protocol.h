// SPDX-License-Identifier: Apache-2.0
// Wire format of the TCP store, shared by server and client.
//
// Every frame, in both directions: u32 length of the rest | u32 request id | u8 code | body.
// Integers are little-endian; a "bytes" field is u32 length + raw bytes (keys and values are
// arbitrary bytes). The client numbers its requests; the server echoes the id, so a client
// that gave up waiting can recognise and drop a late answer. Requests and their bodies:
//   kSet         key, value                                 -> kOk
//   kGet         key, u64 timeoutMs                         -> kOk value | kTimeout
//   kAdd         key, u64 delta (two's complement)          -> kOk u64 newValue | kError msg
//   kWait        u32 n, n keys, u64 timeoutMs               -> kOk | kTimeout u32 n, missing keys
//   kCompareSet  key, expected, u8 expectAbsent, desired    -> kOk u8 present, value
//   kDel         key                                        -> kOk u8 existed
//   kExists      key                                        -> kOk u8 exists
// kGet and kWait park on the server until the keys exist or the timeout passes; the server
// answers each connection's requests in order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "transport/tcp/socket.h"

namespace nodeccl {
namespace storeproto {

enum Cmd : uint8_t {
  kSet = 1,
  kGet = 2,
  kAdd = 3,
  kWait = 4,
  kCompareSet = 5,
  kDel = 6,
  kExists = 7,
};

enum Status : uint8_t { kOk = 0, kTimeout = 1, kError = 2 };

constexpr size_t kHeaderBytes = 9;           // length, id, code
// The largest length a frame may claim (the bytes after its 4-byte length): a request that
// would be larger fails on the client with an error naming this limit, and a server that
// sees a larger length drops the connection without buffering any of it.
constexpr uint32_t kMaxFrameBytes = 64u << 20;

// Builds one frame.
class Writer {
 public:
  Writer(uint32_t id, uint8_t code) : buf_(kHeaderBytes, '\0') {
    net::putU32(bytesAt(4), id);
    buf_[8] = static_cast<char>(code);
  }
  void u8(uint8_t v) { buf_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) {
    unsigned char b[4];
    net::putU32(b, v);
    buf_.append(reinterpret_cast<char*>(b), 4);
  }
  void u64(uint64_t v) {
    unsigned char b[8];
    net::putU64(b, v);
    buf_.append(reinterpret_cast<char*>(b), 8);
  }
  void bytes(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    buf_.append(s);
  }
  // The finished frame (fills in the length).
  std::string take() {
    net::putU32(bytesAt(0), static_cast<uint32_t>(buf_.size() - 4));
    return std::move(buf_);
  }

 private:
  unsigned char* bytesAt(size_t off) { return reinterpret_cast<unsigned char*>(&buf_[off]); }
  std::string buf_;
};

// Reads a frame's body; any read past the end clears ok() instead of throwing.
class Reader {
 public:
  Reader(const char* data, size_t n) : p_(reinterpret_cast<const unsigned char*>(data)), n_(n) {}
  bool ok() const { return ok_; }
  bool atEnd() const { return off_ == n_; }
  uint8_t u8() { return need(1) ? p_[off_++] : 0; }
  uint32_t u32() {
    if (!need(4)) return 0;
    off_ += 4;
    return net::getU32(p_ + off_ - 4);
  }
  uint64_t u64() {
    if (!need(8)) return 0;
    off_ += 8;
    return net::getU64(p_ + off_ - 8);
  }
  std::string bytes() {
    uint32_t len = u32();
    if (!need(len)) return std::string();
    off_ += len;
    return std::string(reinterpret_cast<const char*>(p_ + off_ - len), len);
  }

 private:
  bool need(size_t k) {
    if (n_ - off_ < k) ok_ = false;
    return ok_;
  }
  const unsigned char* p_;
  size_t n_;
  size_t off_ = 0;
  bool ok_ = true;
};

// A key as printable text for messages: quoted, bytes outside ASCII escaped as \xNN, long
// keys cut at 120 characters.
inline std::string printableKey(const std::string& key) {
  static const char* hex = "0123456789abcdef";
  std::string out = "'";
  for (size_t i = 0; i < key.size(); ++i) {
    if (out.size() > 120) {
      out += "...";
      break;
    }
    unsigned char c = static_cast<unsigned char>(key[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out + "'";
}

}  // namespace storeproto
}  // namespace nodeccl
