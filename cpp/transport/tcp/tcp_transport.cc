// SPDX-License-Identifier: Apache-2.0
// The TCP transport (see tcp_transport.h): mesh setup with a hello exchange, and sendRecv's
// poll loop that progresses a send and a receive at the same time.
#include "transport/tcp/tcp_transport.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "common/auth.h"
#include "common/error.h"
#include "common/log.h"
#include "common/trace.h"

namespace nodeccl {
namespace {

using Millis = std::chrono::milliseconds;

constexpr uint32_t kHelloMagic = 0x4843434e;  // "NCCH": connection hello and its answer
constexpr uint32_t kVersion = 1;
constexpr size_t kHdrBytes = kHeaderBytes;
constexpr Millis kHelloTimeout(2000);  // how long a fresh connection may take to say hello
constexpr size_t kMaxPending = 64;     // strays pending at once, beyond the ranks still due

// A comma-separated list of ranks: "3" or "3, 4".
std::string rankList(const std::vector<int>& ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size(); ++i) s += strcat(i ? ", " : "", ranks[i]);
  return s;
}

std::string ranksWord(const std::vector<int>& ranks) {
  return strcat(ranks.size() == 1 ? "rank " : "ranks ", rankList(ranks));
}

// "allReduce #17"
std::string opText(const OpInfo& op) { return opLabel(op); }

// Marks the start of a buffer: iovec wants a non-const pointer even for sends.
char* mutableBytes(const void* p) { return static_cast<char*>(const_cast<void*>(p)); }

}  // namespace

TcpTransport::TcpTransport(int rank, int size, const std::string& listenHost,
                           const std::string& token)
    : rank_(rank), size_(size), token_(token), peers_(static_cast<size_t>(size)), steps_(size) {
  wakeFd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wakeFd_.valid()) {
    throw Error(ErrorCode::kIo, strcat("rank ", rank, ": eventfd() failed: ",
                                       net::errnoText(errno), "; too many open files?"));
  }
  listenFd_ = net::listenTcp(listenHost, 0, strcat("rank ", rank),
                             "no ephemeral port is free; close some connections");
  port_ = net::localPort(listenFd_.get());
  NODECCL_TRACE("tcp", rank_, size_, "listening on ", net::joinHostPort(listenHost, port_));
  const bool loopback = listenHost == "127.0.0.1" || listenHost == "::1";
  if (token_.empty() && !loopback) {
    NODECCL_WARN("tcp", rank_, size_, "listening on '", listenHost, "' (not loopback) without a "
                 "job token: any process that reaches this port could join; set NODECCL_TOKEN "
                 "(nodeccl-run does)");
  }
}

TcpTransport::~TcpTransport() { close(); }

// ---- mesh setup -------------------------------------------------------------------------

void TcpTransport::connectMesh(const std::vector<std::string>& addrs, const std::string& prefix,
                               net::Deadline deadline) {
  NODECCL_CHECK_EQ(addrs.size(), static_cast<size_t>(size_));
  // Hellos to lower ranks go out first without waiting for answers, so that no rank waits
  // on a rank that is itself still connecting; the answers are read at the end.
  connectLower(addrs, prefix, deadline);
  acceptHigher(prefix, deadline);
  readAcks(deadline);
  listenFd_.reset();
  NODECCL_INFO("tcp", rank_, size_, "connected to ", size_ - 1, " peers");
}

// Hello: magic, version, from, to, size, prefix length, prefix.
static std::string makeHello(int from, int to, int size, const std::string& prefix) {
  std::string h(24 + prefix.size(), '\0');
  auto* p = reinterpret_cast<unsigned char*>(&h[0]);
  uint32_t fields[6] = {kHelloMagic, kVersion, uint32_t(from), uint32_t(to), uint32_t(size),
                        uint32_t(prefix.size())};
  for (int i = 0; i < 6; ++i) net::putU32(p + 4 * i, fields[i]);
  std::copy(prefix.begin(), prefix.end(), h.begin() + 24);
  return h;
}

void TcpTransport::connectLower(const std::vector<std::string>& addrs, const std::string& prefix,
                                net::Deadline deadline) {
  for (int peer = 0; peer < rank_; ++peer) {
    std::string host;
    int port = 0;
    if (!net::splitHostPort(addrs[peer], &host, &port)) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat("rank ", rank_, ": rank ", peer, " published the address '",
                         addrs[peer], "', which is not host:port; is another program using "
                         "the store prefix '", prefix, "'?"));
    }
    net::Fd fd = net::connectTcp(host, port, deadline, strcat("rank ", rank_),
                                 strcat("rank ", peer, " may have exited, or its address is not "
                                        "reachable from here; set listenHost to an address "
                                        "the other ranks can reach"));
    net::setNoDelay(fd.get());
    auth::clientHandshake(fd.get(), token_, deadline, strcat("rank ", rank_),
                          strcat("rank ", peer, " at ", addrs[peer]));
    std::string hello = makeHello(rank_, peer, size_, prefix);
    int err = 0;
    if (net::sendAll(fd.get(), hello.data(), hello.size(), deadline, -1, &err) !=
        net::IoStatus::kDone) {
      throw Error(ErrorCode::kPeerLost,
                  strcat("rank ", rank_, ": could not greet rank ", peer, " at ", addrs[peer],
                         " (", err ? net::errnoText(err) : "timed out",
                         "); rank ", peer, " probably exited or crashed — check its output"));
    }
    peers_[peer] = std::move(fd);
  }
}

// A connection accepted during the mesh setup that has not yet proved itself a peer. Each is
// driven by the poll loop in acceptHigher, never by a blocking read, so a slow or silent
// connection (slow-loris) costs only its own deadline and cannot hold up a real peer.
struct TcpTransport::Pending {
  net::Fd fd;
  net::Deadline by;              // dropped if still not a peer then (kHelloTimeout)
  auth::ServerState auth;
  bool authed = false;
  std::string in;                // the bytes of the current stage, never more than `need`
  size_t need = auth::kResponseBytes;
};

// Accepts every rank above this one. All pending connections are polled together with the
// listener; one that fails or passes kHelloTimeout is dropped with a warning. At most
// kMaxPending + the missing ranks are pending at once: past that the oldest is dropped first.
void TcpTransport::acceptHigher(const std::string& prefix, net::Deadline deadline) {
  auto start = net::Clock::now();
  std::vector<std::unique_ptr<Pending>> pending;
  for (;;) {
    std::vector<int> missing;
    for (int r = rank_ + 1; r < size_; ++r) {
      if (!peers_[r].valid()) missing.push_back(r);
    }
    if (missing.empty()) return;  // `pending` strays are closed here
    dropExpired(&pending);
    std::vector<pollfd> pfds{{listenFd_.get(), POLLIN, 0}};
    int wait = net::msUntil(deadline);
    for (auto& p : pending) {
      pfds.push_back({p->fd.get(), POLLIN, 0});
      wait = std::min(wait, net::msUntil(p->by));
    }
    int n = ::poll(pfds.data(), pfds.size(), std::max(0, wait));
    if (n < 0 && errno != EINTR) break;
    for (size_t i = 1; n > 0 && i < pfds.size(); ++i) {
      if (pfds[i].revents != 0 && !progressPending(*pending[i - 1], prefix)) {
        pending[i - 1].reset();
      }
    }
    pending.erase(std::remove(pending.begin(), pending.end(), nullptr), pending.end());
    if (n > 0 && (pfds[0].revents & POLLIN)) {
      acceptPending(&pending, kMaxPending + missing.size(), deadline);
    }
    if (net::Clock::now() >= deadline) break;
  }
  std::vector<int> missing;
  for (int r = rank_ + 1; r < size_; ++r) {
    if (!peers_[r].valid()) missing.push_back(r);
  }
  auto waited = std::chrono::duration_cast<Millis>(net::Clock::now() - start);
  throw Error(ErrorCode::kTimeout,
              strcat("rank ", rank_, ": timed out after ", waited.count(), " ms waiting for ",
                     ranksWord(missing), " to connect; they published their addresses but "
                     "could not reach this rank — check firewalls and listenHost"));
}

// Accepts what the listener holds and sends each its authentication challenge.
void TcpTransport::acceptPending(std::vector<std::unique_ptr<Pending>>* pending, size_t most,
                                 net::Deadline deadline) {
  for (;;) {
    int raw = ::accept4(listenFd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (raw < 0) return;
    auto p = std::make_unique<Pending>();
    p->fd.reset(raw);
    net::setNoDelay(raw);
    p->by = std::min(deadline, net::deadlineAfter(kHelloTimeout));
    std::string c = auth::challenge(token_, &p->auth);
    if (::send(raw, c.data(), c.size(), MSG_NOSIGNAL | MSG_DONTWAIT) !=
        static_cast<ssize_t>(c.size())) {
      continue;  // a fresh socket that cannot take 21 bytes is already gone
    }
    if (pending->size() >= most) {
      NODECCL_WARN("tcp", rank_, size_, "dropped the oldest of ", pending->size(),
                   " connections that have not yet said hello, to make room");
      pending->erase(pending->begin());
    }
    pending->push_back(std::move(p));
  }
}

// Drops the pending connections whose kHelloTimeout has passed.
void TcpTransport::dropExpired(std::vector<std::unique_ptr<Pending>>* pending) {
  auto now = net::Clock::now();
  size_t before = pending->size();
  pending->erase(std::remove_if(pending->begin(), pending->end(),
                                [&](const std::unique_ptr<Pending>& p) { return now >= p->by; }),
                 pending->end());
  if (pending->size() < before) {
    NODECCL_WARN("tcp", rank_, size_, "dropped ", before - pending->size(), " connection(s) "
                 "that did not authenticate and say hello within ", kHelloTimeout.count(),
                 " ms");
  }
}

// Reads what the connection sent for its current stage (authentication response, hello,
// hello's prefix) and moves it on. False when it is to be dropped; a peer leaves `pending`
// for peers_ (its fd moved out), also returning false.
bool TcpTransport::progressPending(Pending& p, const std::string& prefix) {
  while (p.in.size() < p.need) {
    char buf[4096];
    size_t want = std::min(sizeof(buf), p.need - p.in.size());
    ssize_t k = ::recv(p.fd.get(), buf, want, MSG_DONTWAIT);
    if (k > 0) {
      p.in.append(buf, static_cast<size_t>(k));
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    return k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);  // else EOF or error: drop
  }
  if (!p.authed) {
    bool ok = false;
    std::string why;
    std::string v = auth::verdict(token_, p.auth,
                                  reinterpret_cast<const unsigned char*>(p.in.data()), &ok, &why);
    ::send(p.fd.get(), v.data(), v.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (!ok) {
      NODECCL_WARN("tcp", rank_, size_, "rank ", rank_, ": refused a peer connection: ", why,
                   "; give every process of the job the same NODECCL_TOKEN");
      return false;
    }
    p.authed = true;
    p.in.clear();
    p.need = 24;
    return progressPending(p, prefix);
  }
  const auto* h = reinterpret_cast<const unsigned char*>(p.in.data());
  if (net::getU32(h) != kHelloMagic) {
    NODECCL_WARN("tcp", rank_, size_, "dropped a connection that did not send a nodeccl hello");
    return false;
  }
  uint32_t plen = net::getU32(h + 20);
  if (plen > 4096) {
    NODECCL_WARN("tcp", rank_, size_, "dropped a connection with a malformed hello");
    return false;
  }
  if (p.need == 24 && plen > 0) {
    p.need += plen;
    return progressPending(p, prefix);
  }
  return checkHello(p, prefix);
}

// The whole hello has arrived: answers it, and on success makes the connection a peer.
bool TcpTransport::checkHello(Pending& p, const std::string& prefix) {
  const auto* h = reinterpret_cast<const unsigned char*>(p.in.data());
  uint32_t version = net::getU32(h + 4), from = net::getU32(h + 8), to = net::getU32(h + 12);
  uint32_t size = net::getU32(h + 16);
  std::string theirPrefix = p.in.substr(24);
  bool ok = version == kVersion && theirPrefix == prefix && to == uint32_t(rank_) &&
            size == uint32_t(size_) && from > uint32_t(rank_) && from < uint32_t(size_) &&
            !peers_[from].valid();
  unsigned char ack[5];
  net::putU32(ack, kHelloMagic);
  ack[4] = ok ? 1 : 0;
  ::send(p.fd.get(), ack, sizeof(ack), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (!ok) {
    NODECCL_WARN("tcp", rank_, size_, "turned away a connection from rank ", from, " for rank ",
                 to, " of size ", size, " (prefix '", theirPrefix, "', version ", version,
                 "): it belongs to another communicator or is a duplicate");
    return false;
  }
  peers_[from] = std::move(p.fd);
  return false;
}

void TcpTransport::readAcks(net::Deadline deadline) {
  for (int peer = 0; peer < rank_; ++peer) {
    unsigned char ack[5];
    int err = 0;
    net::IoStatus st = net::recvAll(peers_[peer].get(), ack, sizeof(ack), deadline, -1, &err);
    if (st == net::IoStatus::kTimeout) {
      throw Error(ErrorCode::kTimeout,
                  strcat("rank ", rank_, ": rank ", peer, " did not accept this rank's "
                         "connection before the init timeout; it may be stuck connecting to "
                         "another rank"));
    }
    if (st != net::IoStatus::kDone || net::getU32(ack) != kHelloMagic || ack[4] != 1) {
      throw Error(ErrorCode::kPeerLost,
                  strcat("rank ", rank_, ": rank ", peer, " refused this rank's connection; "
                         "two processes may be using rank ", rank_, " or different world "
                         "sizes under the same prefix"));
    }
  }
}

// ---- sendRecv ---------------------------------------------------------------------------

int TcpTransport::peerFd(int peer, const char* what) const {
  if (peer < 0) return -1;
  if (peer >= size_ || peer == rank_ || !peers_[peer].valid()) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("rank ", rank_, ": cannot ", what, " rank ", peer, "; peers are 0..",
                       size_ - 1, " other than this rank", peer < size_ && peer != rank_
                           ? " (the connection is closed: was the communicator destroyed?)"
                           : ""));
  }
  return peers_[peer].get();
}

void TcpTransport::sendRecv(int sendPeer, const void* sbuf, size_t sbytes, int recvPeer,
                            void* rbuf, size_t rbytes, const OpInfo& op) {
  if (aborted_.load()) throwAborted();
  Side s, r;
  s.fd = peerFd(sendPeer, "send to");
  r.fd = peerFd(recvPeer, "receive from");

  // The send side starts with its header filled in; the receive side fills its own.
  s.peer = sendPeer;
  s.buf = mutableBytes(sbuf);
  s.bytes = sendPeer >= 0 ? sbytes : 0;
  if (sendPeer >= 0) encodeHeader(s.hdr, op, rank_, steps_.forSend(op, sendPeer), s.bytes);
  r.peer = recvPeer;
  r.buf = static_cast<char*>(rbuf);
  r.bytes = recvPeer >= 0 ? rbytes : 0;
  if (recvPeer >= 0) r.step = steps_.forRecv(op, recvPeer);

  // Push both directions as far as the sockets allow, then sleep in poll() until one can move.
  for (;;) {
    if (!s.complete()) progressSend(s, op);
    if (!r.complete()) progressRecv(r, op);
    if (s.complete() && r.complete()) return;
    waitProgress(s, r, op);
  }
}

void TcpTransport::progressSend(Side& s, const OpInfo& op) {
  while (!s.complete()) {
    iovec iov[2];
    int n = 0;
    if (s.hdrDone < kHdrBytes) iov[n++] = {s.hdr + s.hdrDone, kHdrBytes - s.hdrDone};
    if (s.done < s.bytes) iov[n++] = {s.buf + s.done, std::min<size_t>(s.bytes - s.done, 1u << 30)};
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = n;
    ssize_t k = ::sendmsg(s.fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      throwPeerError(s.peer, errno, op);
    }
    size_t moved = static_cast<size_t>(k);
    size_t h = std::min(moved, kHdrBytes - s.hdrDone);
    s.hdrDone += h;
    s.done += moved - h;
  }
}

// Reads the header alone, checks it (checkHeader throws kMismatch when it disagrees with what
// this rank expects), and only then the payload, so that the caller's buffer never receives
// the bytes of a mismatched message.
void TcpTransport::progressRecv(Side& r, const OpInfo& op) {
  while (!r.complete()) {
    iovec iov[1];
    int n = 0;
    if (r.hdrDone < kHdrBytes) iov[n++] = {r.hdr + r.hdrDone, kHdrBytes - r.hdrDone};
    else iov[n++] = {r.buf + r.done, std::min<size_t>(r.bytes - r.done, 1u << 30)};
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = n;
    ssize_t k = ::recvmsg(r.fd, &m, MSG_DONTWAIT);
    if (k == 0) throwPeerError(r.peer, 0, op);
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      throwPeerError(r.peer, errno, op);
    }
    size_t moved = static_cast<size_t>(k);
    size_t h = std::min(moved, kHdrBytes - r.hdrDone);
    r.hdrDone += h;
    r.done += moved - h;
    if (h > 0 && r.hdrDone == kHdrBytes) checkHeader(r.hdr, op, rank_, r.peer, r.step, r.bytes);
  }
}

// Sleeps in poll() until a pending direction can move, abort() runs, or the deadline passes.
void TcpTransport::waitProgress(const Side& s, const Side& r, const OpInfo& op) {
  // A default deadline (beginOp never called, e.g. setup traffic) means no deadline.
  bool hasDeadline = op.deadline != std::chrono::steady_clock::time_point();
  if (hasDeadline && net::Clock::now() >= op.deadline) throwTimeout(s, r, op);
  pollfd p[3];
  nfds_t n = 0;
  p[n++] = {wakeFd_.get(), POLLIN, 0};
  if (!s.complete()) p[n++] = {s.fd, POLLOUT, 0};
  if (!r.complete()) {
    if (n == 2 && p[1].fd == r.fd) p[1].events |= POLLIN;  // one socket both ways (size 2)
    else p[n++] = {r.fd, POLLIN, 0};
  }
  // NODECCL_TRACE: each time blocked here is a "wait" event naming the peers still due.
  trace::Track* track = trace::current();
  auto t0 = track != nullptr ? trace::Clock::now() : trace::Clock::time_point();
  int k = ::poll(p, n, hasDeadline ? net::msUntil(op.deadline) : -1);
  if (track != nullptr) {
    track->complete("wait", "wait", t0, trace::Clock::now(),
                    strcat("\"send_peer\":", s.complete() ? -1 : s.peer, ",\"recv_peer\":",
                           r.complete() ? -1 : r.peer));
  }
  if (k < 0 && errno != EINTR) {
    throw Error(ErrorCode::kIo, strcat("rank ", rank_, ": poll() failed during ", opText(op),
                                       ": ", net::errnoText(errno)));
  }
  if (aborted_.load() || (k > 0 && (p[0].revents & POLLIN))) throwAborted();
}

// ---- errors and abort -------------------------------------------------------------------

void TcpTransport::throwPeerError(int peer, int err, const OpInfo& op) {
  if (aborted_.load()) throwAborted();  // abort() may have been why the socket failed
  if (err == 0 || net::isPeerGone(err)) {
    throw Error(ErrorCode::kPeerLost,
                strcat("rank ", rank_, ": lost connection to rank ", peer, " during ",
                       opText(op), " (", err == 0 ? "connection closed by peer"
                                                  : net::errnoText(err),
                       "); rank ", peer, " probably exited or crashed — check its output"));
  }
  throw Error(ErrorCode::kIo, strcat("rank ", rank_, ": socket error with rank ", peer,
                                     " during ", opText(op), ": ", net::errnoText(err)));
}

void TcpTransport::throwTimeout(const Side& s, const Side& r, const OpInfo& op) {
  std::string waiting;
  if (!r.complete()) {
    waiting = strcat("rank ", r.peer, " (receive: ", r.done, " of ", r.bytes, " bytes",
                     r.hdrDone < kHdrBytes ? ", no header yet" : "", ")");
  }
  if (!s.complete()) {
    waiting += strcat(waiting.empty() ? "" : " and ", "rank ", s.peer, " (send: ", s.done,
                      " of ", s.bytes, " bytes)");
  }
  // Logged as well as thrown, so that NODECCL_DEBUG=warn shows every rank's view in its log.
  NODECCL_WARN("tcp", rank_, size_, opText(op), " timed out after ", op.timeoutMs,
               " ms waiting for ", waiting);
  throw Error(ErrorCode::kTimeout,
              strcat("rank ", rank_, ": ", opText(op), " timed out after ", op.timeoutMs,
                     " ms waiting for ", waiting, "; a rank may have stopped calling "
                     "collectives or called them in a different order, or the timeout is too "
                     "short for this size"));
}

void TcpTransport::throwAborted() {
  std::lock_guard<std::mutex> lock(mu_);
  throw Error(ErrorCode::kAborted, reason_);
}

void TcpTransport::abort(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (aborted_.load() || closed_) return;
  reason_ = reason;
  aborted_.store(true);
  // The eventfd stays readable from now on: every later poll() wakes at once. Written under
  // mu_, so that close() cannot close it (and the number be reused) under this write.
  uint64_t one = 1;
  ssize_t rc;
  do {
    rc = ::write(wakeFd_.get(), &one, sizeof(one));
  } while (rc < 0 && errno == EINTR);
}

void TcpTransport::close() {
  listenFd_.reset();
  for (net::Fd& fd : peers_) fd.reset();
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  wakeFd_.reset();
}

}  // namespace nodeccl
