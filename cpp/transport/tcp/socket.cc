// SPDX-License-Identifier: Apache-2.0
// POSIX socket helpers for the TCP store and transport (see socket.h).
#include "transport/tcp/socket.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <thread>

#include "common/error.h"

namespace nodeccl {
namespace net {
namespace {

struct SockAddr {
  sockaddr_storage ss;
  socklen_t len;
};

// getaddrinfo for host:port; false with *err set when the name does not resolve.
bool resolve(const std::string& host, int port, bool passive, std::vector<SockAddr>* out,
             std::string* err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  bool wildcard = host.empty() || host == "*";
  std::string service = std::to_string(port);
  addrinfo* res = nullptr;
  int rc = getaddrinfo(wildcard ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    *err = strcat("cannot resolve host '", host, "': ",
                  rc == EAI_SYSTEM ? errnoText(errno) : std::string(gai_strerror(rc)));
    return false;
  }
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    SockAddr a{};
    std::memcpy(&a.ss, ai->ai_addr, ai->ai_addrlen);
    a.len = ai->ai_addrlen;
    out->push_back(a);
  }
  freeaddrinfo(res);
  return true;
}

// Numeric host of a socket address; IPv4-mapped IPv6 addresses are shown as IPv4.
std::string numericHost(const sockaddr_storage& ss, socklen_t len) {
  char buf[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&ss), len, buf, sizeof(buf), nullptr, 0,
                  NI_NUMERICHOST) != 0) {
    return "";
  }
  std::string h(buf);
  if (h.rfind("::ffff:", 0) == 0 && h.find('.') != std::string::npos) h = h.substr(7);
  return h;
}

// A connection to itself (possible when retrying a local port inside the ephemeral range
// while nobody listens on it) looks like success; detect it so the caller retries.
bool isSelfConnect(int fd) {
  sockaddr_storage a{}, b{};
  socklen_t la = sizeof(a), lb = sizeof(b);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &la) != 0) return false;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&b), &lb) != 0) return false;
  return la == lb && std::memcmp(&a, &b, la) == 0;
}

// One non-blocking connect attempt to `a`, waiting until `deadline`. Returns an invalid Fd and
// sets *last on failure.
Fd tryConnect(const SockAddr& a, Deadline deadline, std::string* last) {
  Fd fd(::socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    *last = strcat("socket(): ", errnoText(errno));
    return Fd();
  }
  int rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a.ss), a.len);
  if (rc != 0 && errno != EINPROGRESS && errno != EINTR) {
    *last = errnoText(errno);
    return Fd();
  }
  if (rc != 0) {
    // The handshake is in progress: wait for writability, then read its outcome.
    pollfd p{fd.get(), POLLOUT, 0};
    int n;
    do {
      n = ::poll(&p, 1, msUntil(deadline));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      *last = n == 0 ? "connection attempt timed out" : errnoText(errno);
      return Fd();
    }
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (soerr != 0) {
      *last = errnoText(soerr);
      return Fd();
    }
  }
  if (isSelfConnect(fd.get())) {
    *last = "connection refused (connected to itself)";
    return Fd();
  }
  return fd;
}

// Waits for `events` on fd (and readability of wakeFd when >= 0) until the deadline.
// Returns 1 when fd is ready, 0 on timeout, 2 when woken, -1 with errno on failure.
int waitReady(int fd, short events, Deadline deadline, int wakeFd) {
  pollfd p[2] = {{fd, events, 0}, {wakeFd, POLLIN, 0}};
  for (;;) {
    int ms = msUntil(deadline);
    int n = ::poll(p, wakeFd >= 0 ? 2 : 1, ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (wakeFd >= 0 && (p[1].revents & POLLIN)) return 2;
    if (n > 0) return 1;
    if (Clock::now() >= deadline) return 0;
  }
}

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

int Fd::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);  // close() is not retried on EINTR: the fd is gone either way
  fd_ = fd;
}

std::string joinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return strcat("[", host, "]:", port);
  return strcat(host, ":", port);
}

bool splitHostPort(const std::string& text, std::string* host, int* port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size()) return false;
  std::string h = text.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  char* end = nullptr;
  long p = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p < 0 || p > 65535) return false;
  *host = h;
  *port = static_cast<int>(p);
  return true;
}

int msUntil(Deadline d) {
  auto left = d - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

Deadline deadlineAfter(std::chrono::milliseconds ms) {
  const std::chrono::milliseconds cap(365LL * 24 * 3600 * 1000);
  if (ms < std::chrono::milliseconds(0)) ms = std::chrono::milliseconds(0);
  return Clock::now() + (ms > cap ? cap : ms);
}

std::string errnoText(int err) {
  char buf[256];
  // GNU strerror_r returns a pointer that may or may not be `buf`.
  std::string s = strerror_r(err, buf, sizeof(buf));
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z' && (s.size() < 2 || !(s[1] >= 'A' && s[1] <= 'Z')))
    s[0] = static_cast<char>(s[0] - 'A' + 'a');
  return s;
}

bool isPeerGone(int err) {
  return err == ECONNRESET || err == EPIPE || err == ENOTCONN || err == ECONNABORTED ||
         err == ETIMEDOUT || err == EHOSTUNREACH || err == ENETUNREACH;
}

void setNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

void setNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

Fd listenTcp(const std::string& host, int port, const std::string& who,
             const std::string& inUseHint) {
  std::vector<SockAddr> addrs;
  std::string err;
  std::string where = joinHostPort(host.empty() ? "*" : host, port);
  const std::string hostHint = "use an address of this machine (or \"0.0.0.0\" for all)";
  if (!resolve(host, port, true, &addrs, &err)) {
    throw Error(ErrorCode::kIo,
                strcat(who, ": cannot listen on ", where, ": ", err, "; ", hostHint));
  }
  // Take the first address that binds (a wildcard resolves to both :: and 0.0.0.0).
  int firstErrno = 0;
  for (const SockAddr& a : addrs) {
    Fd fd(::socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int one = 1;
    if (fd.valid()) setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd.valid() && ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a.ss), a.len) == 0 &&
        ::listen(fd.get(), SOMAXCONN) == 0) {
      return fd;
    }
    if (firstErrno == 0) firstErrno = errno;
  }
  throw Error(ErrorCode::kIo,
              strcat(who, ": cannot listen on ", where, ": ", errnoText(firstErrno), "; ",
                     firstErrno == EADDRINUSE ? inUseHint : hostHint));
}

int localPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return -1;
}

std::string localHost(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  return numericHost(ss, len);
}

Fd connectTcp(const std::string& host, int port, Deadline deadline, const std::string& who,
              const std::string& hint) {
  auto start = Clock::now();
  std::string last = "no attempt made";
  int backoffMs = 10;
  for (;;) {
    // Resolve on every round: a host name may start resolving once its container is up.
    std::vector<SockAddr> addrs;
    if (resolve(host, port, false, &addrs, &last)) {
      for (const SockAddr& a : addrs) {
        Fd fd = tryConnect(a, deadline, &last);
        if (fd.valid()) return fd;
      }
    }
    int left = msUntil(deadline);
    if (left <= 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(backoffMs, left)));
    backoffMs = std::min(backoffMs * 2, 200);
  }
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  throw Error(ErrorCode::kTimeout,
              strcat(who, ": cannot connect to ", joinHostPort(host, port), " within ",
                     waited.count(), " ms (last error: ", last, "); ", hint));
}

IoStatus sendAll(int fd, const void* buf, size_t n, Deadline deadline, int wakeFd, int* err) {
  const char* p = static_cast<const char*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t k = ::send(fd, p + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0) {
      done += static_cast<size_t>(k);
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      *err = errno;
      return isPeerGone(errno) ? IoStatus::kClosed : IoStatus::kError;
    }
    int r = waitReady(fd, POLLOUT, deadline, wakeFd);
    if (r == 0) return IoStatus::kTimeout;
    if (r == 2) return IoStatus::kWoken;
    if (r < 0) {
      *err = errno;
      return IoStatus::kError;
    }
  }
  return IoStatus::kDone;
}

IoStatus recvAll(int fd, void* buf, size_t n, Deadline deadline, int wakeFd, int* err) {
  char* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t k = ::recv(fd, p + done, n - done, MSG_DONTWAIT);
    if (k > 0) {
      done += static_cast<size_t>(k);
      continue;
    }
    if (k == 0) return IoStatus::kClosed;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      *err = errno;
      return isPeerGone(errno) ? IoStatus::kClosed : IoStatus::kError;
    }
    int r = waitReady(fd, POLLIN, deadline, wakeFd);
    if (r == 0) return IoStatus::kTimeout;
    if (r == 2) return IoStatus::kWoken;
    if (r < 0) {
      *err = errno;
      return IoStatus::kError;
    }
  }
  return IoStatus::kDone;
}

}  // namespace net
}  // namespace nodeccl
