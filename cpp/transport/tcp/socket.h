// SPDX-License-Identifier: Apache-2.0
// Small POSIX socket helpers shared by the TCP store and the TCP transport: address parsing and
// resolution (IPv4, IPv6, host names), listening, connecting with retry, and byte moves with a
// deadline. Every call retries on EINTR; sends use MSG_NOSIGNAL so a dead peer never raises
// SIGPIPE in the Node process.
#pragma once

#include "common/bytes.h"

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace nodeccl {
namespace net {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// Owns a file descriptor and closes it on destruction. Movable, not copyable.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release();
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// "host:port", with IPv6 literals in brackets: "[::1]:29500".
std::string joinHostPort(const std::string& host, int port);

// Splits "host:port" or "[v6]:port"; false when the text has no valid port.
bool splitHostPort(const std::string& text, std::string* host, int* port);

// Milliseconds from now until `d`, rounded up, clamped to [0, INT_MAX].
int msUntil(Deadline d);

// Clamps a millisecond count so that now + ms stays representable (at most ~1 year).
Deadline deadlineAfter(std::chrono::milliseconds ms);

// strerror(err) as a std::string (thread-safe).
std::string errnoText(int err);

void setNonBlocking(int fd);
void setNoDelay(int fd);

// Binds and listens on host:port (port 0 picks a free one; "" or "*" means every address);
// returns a non-blocking socket. On failure throws kIo:
// "<who>: cannot listen on host:port: <reason>; <hint>", where the hint is `inUseHint` when
// the port is taken and advice on the host otherwise.
Fd listenTcp(const std::string& host, int port, const std::string& who,
             const std::string& inUseHint);

// The bound port and numeric host of a socket (getsockname).
int localPort(int fd);
std::string localHost(int fd);

// Connects to host:port, retrying refused or unreachable attempts (the other side may start
// later) until `deadline`. Returns a non-blocking socket. Throws kTimeout:
// "<who>: cannot connect to host:port within N ms (last error: ...); <hint>".
Fd connectTcp(const std::string& host, int port, Deadline deadline, const std::string& who,
              const std::string& hint);

// Outcome of a blocking move on a non-blocking socket.
enum class IoStatus { kDone, kTimeout, kClosed, kError, kWoken };

// Sends or receives exactly `n` bytes before `deadline`, waiting with poll(). When `wakeFd` is
// >= 0 and becomes readable, returns kWoken. On kError, *err holds errno. kClosed: the peer
// closed the connection (EOF, ECONNRESET or EPIPE).
IoStatus sendAll(int fd, const void* buf, size_t n, Deadline deadline, int wakeFd, int* err);
IoStatus recvAll(int fd, void* buf, size_t n, Deadline deadline, int wakeFd, int* err);

// True for errno values that mean "the peer went away".
bool isPeerGone(int err);

// Little-endian encoding of fixed-size integers for wire formats.
using ::nodeccl::getU32;
using ::nodeccl::getU64;
using ::nodeccl::putU32;
using ::nodeccl::putU64;

}  // namespace net
}  // namespace nodeccl
