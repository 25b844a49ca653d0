// SPDX-License-Identifier: Apache-2.0
// The TCP store server: one background thread runs poll() over the listening socket, a wake-up
// eventfd and every client connection (no thread per client). Blocking get/wait requests are
// parked on their connection and answered when their keys appear or their deadline passes.
// All state below is touched only by that thread, except `stopped` and the eventfd.
// Memory is bounded (StoreLimits): connections, bytes buffered for them, bytes stored, and
// one request (kMaxFrameBytes); a client that would pass a limit is refused, with a warning.
#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <cstdint>

#include "common/error.h"
#include "common/log.h"
#include "store/protocol.h"
#include "store/store.h"
#include "transport/tcp/socket.h"

namespace nodeccl {
namespace {

using namespace storeproto;

// One client connection and its (at most one) parked get/wait request.
struct Conn {
  net::Fd fd;
  std::string in;       // received bytes; frames are parsed from `inOff`
  size_t inOff = 0;
  std::string out;      // answers waiting to be sent, from `outOff`
  size_t outOff = 0;
  bool dead = false;
  bool parked = false;  // a get/wait is waiting; later requests wait behind it (in order)
  uint8_t parkedCmd = 0;
  uint32_t parkedId = 0;
  std::vector<std::string> parkedKeys;
  net::Deadline parkedDeadline;
  std::string peer;     // the client's address, for messages
  // Authentication (common/auth.h): no request is read before the client proved the token.
  bool authed = false;
  auth::ServerState authState;
  net::Deadline authBy;  // a client still silent then is dropped (slow or not nodeccl)
};

// How long a new connection may take to answer the authentication challenge.
constexpr std::chrono::milliseconds kAuthTimeout(10000);

// A connection's requests wait (unread) while more than one frame's worth of its answers is
// unsent: a client that sends requests without reading the answers cannot grow `out`.
bool outBacklog(const Conn& c) { return c.out.size() - c.outOff > kMaxFrameBytes; }

// True when a whole frame is waiting in `in` and the answers are flowing.
bool hasRunnableFrame(const Conn& c) {
  if (outBacklog(c) || c.in.size() - c.inOff < 4) return false;
  uint32_t len = net::getU32(reinterpret_cast<const unsigned char*>(c.in.data() + c.inOff));
  return c.in.size() - c.inOff >= 4 + static_cast<size_t>(len);
}

size_t envSize(const char* name, size_t fallback, size_t unit) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(v, &end, 10);
  if (*end != '\0' || errno != 0 || n == 0 || v[0] == '-' || n > (SIZE_MAX / unit)) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat(name, "='", v, "' is not a positive integer; unset it or give e.g. ",
                       name, "=", fallback / unit));
  }
  NODECCL_INFO("store", -1, 0, name, "=", v);
  return static_cast<size_t>(n) * unit;
}

}  // namespace

struct TcpStoreServer::Impl {
  std::string host;
  int port = 0;
  std::string token;  // the job token clients must prove; "" for none
  net::Fd listenFd;
  net::Fd wakeFd;  // eventfd written by stop()
  std::thread thread;
  std::mutex stopMu;
  bool stopped = false;

  std::unordered_map<std::string, std::string> data;
  std::vector<std::unique_ptr<Conn>> conns;
  StoreLimits limits;
  size_t buffered = 0;     // Σ in + out over conns, recounted every pass, raised by readConn
  size_t stored = 0;       // Σ key + value over data
  size_t turnedAway = 0;   // connections closed because maxConnections were open
  size_t refusedClients = 0;  // clients refused for a wrong job token

  void loop();
  int pollTimeoutMs() const;
  void acceptAll();
  void readConn(Conn& c);
  bool makeRoom(Conn& c, size_t k);
  void writeConn(Conn& c);
  bool progress();
  bool processFrames(Conn& c);
  bool authenticate(Conn& c);
  bool dispatch(Conn& c, uint32_t id, uint8_t cmd, Reader& r);
  bool park(Conn& c, uint32_t id, uint8_t cmd, Reader& r);
  bool handleAdd(Conn& c, uint32_t id, Reader& r);
  bool handleCompareSet(Conn& c, uint32_t id, Reader& r);
  bool answerParked(Conn& c);
  bool putValue(const std::string& key, std::string&& value, std::string* why);
  std::string doAdd(const std::string& key, int64_t delta, bool* ok);
};

TcpStoreServer::TcpStoreServer(const std::string& host, int port, const std::string& token,
                               const StoreLimits& limits)
    : impl_(new Impl) {
  impl_->token = token;
  impl_->limits = limits;
  if (port < 0 || port > 65535) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("nodeccl store: port ", port, " is out of range; use 0..65535"));
  }
  impl_->host = host;
  impl_->listenFd = net::listenTcp(host, port, "nodeccl store",
                                   "pick another MASTER_PORT or stop the process holding it");
  impl_->port = net::localPort(impl_->listenFd.get());
  impl_->wakeFd.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl_->wakeFd.valid()) {
    throw Error(ErrorCode::kIo, strcat("nodeccl store: eventfd() failed: ",
                                       net::errnoText(errno), "; too many open files?"));
  }
  NODECCL_INFO("store", -1, 0, "store server listening on ",
               net::joinHostPort(host.empty() ? "*" : host, impl_->port),
               token.empty() ? " without a job token" : " with a job token");
  const bool loopback = host == "127.0.0.1" || host == "::1" || host == "localhost";
  if (token.empty() && !loopback) {
    NODECCL_WARN("store", -1, 0, "the store listens on '", host.empty() ? "*" : host,
                 "' (not loopback) without a job token: any process that reaches this port "
                 "can read and write the job's keys; set NODECCL_TOKEN (nodeccl-run does)");
  }
  impl_->thread = std::thread([this] { impl_->loop(); });
}

TcpStoreServer::~TcpStoreServer() { stop(); }

int TcpStoreServer::port() const { return impl_->port; }

void TcpStoreServer::stop() {
  std::lock_guard<std::mutex> lock(impl_->stopMu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  uint64_t one = 1;
  ssize_t rc;
  do {
    rc = ::write(impl_->wakeFd.get(), &one, sizeof(one));
  } while (rc < 0 && errno == EINTR);
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->conns.clear();  // closes every client connection: their requests fail promptly
  impl_->listenFd.reset();
  NODECCL_INFO("store", -1, 0, "store server on port ", impl_->port, " stopped");
}

// ---- the poll loop ----------------------------------------------------------------------

void TcpStoreServer::Impl::loop() {
  std::vector<pollfd> pfds;
  for (;;) {
    // Slots 0 and 1 are the listener and the wake-up eventfd; then one per connection.
    pfds.assign({{listenFd.get(), POLLIN, 0}, {wakeFd.get(), POLLIN, 0}});
    buffered = 0;
    for (auto& c : conns) {
      buffered += c->in.size() + c->out.size();
      short ev = POLLIN;
      if (c->outOff < c->out.size()) ev |= POLLOUT;
      pfds.push_back({c->fd.get(), ev, 0});
    }
    int n = ::poll(pfds.data(), pfds.size(), pollTimeoutMs());
    if (n < 0 && errno != EINTR) {
      NODECCL_WARN("store", -1, 0, "store server: poll() failed: ", net::errnoText(errno),
                   "; retrying");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (n > 0 && (pfds[1].revents & POLLIN)) return;

    // Read what arrived, answer what can be answered, then flush and drop dead connections.
    size_t existing = pfds.size() - 2;
    for (size_t i = 0; n > 0 && i < existing; ++i) {
      if (pfds[i + 2].revents & (POLLIN | POLLHUP | POLLERR)) readConn(*conns[i]);
    }
    if (n > 0 && (pfds[0].revents & POLLIN)) acceptAll();
    while (progress()) {
    }
    for (auto& c : conns) {
      if (!c->dead && c->outOff < c->out.size()) writeConn(*c);
    }
    conns.erase(std::remove_if(conns.begin(), conns.end(),
                               [](const std::unique_ptr<Conn>& c) { return c->dead; }),
                conns.end());
  }
}

// Until the earliest parked deadline; -1 (forever) when nothing is parked.
int TcpStoreServer::Impl::pollTimeoutMs() const {
  int best = -1;
  for (auto& c : conns) {
    if (c->authed && !c->parked && hasRunnableFrame(*c)) return 0;  // held back by outBacklog
    if (!c->parked && c->authed) continue;
    int ms = net::msUntil(c->authed ? c->parkedDeadline : c->authBy);
    if (best < 0 || ms < best) best = ms;
  }
  return best;
}

void TcpStoreServer::Impl::acceptAll() {
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    int fd = ::accept4(listenFd.get(), reinterpret_cast<sockaddr*>(&ss), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        NODECCL_WARN("store", -1, 0, "store server: accept() failed: ", net::errnoText(errno));
      }
      return;
    }
    size_t open = static_cast<size_t>(std::count_if(
        conns.begin(), conns.end(), [](const std::unique_ptr<Conn>& c) { return !c->dead; }));
    if (open >= limits.maxConnections) {
      ::close(fd);
      if (turnedAway++ % 1000 == 0) {
        NODECCL_WARN("store", -1, 0, "store server: closed a new connection: ", open,
                     " are open, the limit (NODECCL_STORE_MAX_CONNECTIONS=",
                     limits.maxConnections, "); ", turnedAway, " turned away so far");
      }
      continue;
    }
    auto c = std::make_unique<Conn>();
    c->fd.reset(fd);
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    ::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof(host), serv, sizeof(serv),
                  NI_NUMERICHOST | NI_NUMERICSERV);
    c->peer = strcat(host, ":", serv);
    net::setNoDelay(fd);
    c->out = auth::challenge(token, &c->authState);
    c->authBy = net::deadlineAfter(kAuthTimeout);
    NODECCL_TRACE("store", -1, 0, "store server: new client connection");
    conns.push_back(std::move(c));
  }
}

// Makes room for `k` more bytes on `c` within maxBufferedBytes by dropping whichever
// connections hold the most (a job's own requests are small and answered at once, so the
// largest holder is the one flooding). False when that is `c` itself.
bool TcpStoreServer::Impl::makeRoom(Conn& c, size_t k) {
  while (buffered + k > limits.maxBufferedBytes) {
    Conn* hog = &c;
    size_t most = c.in.size() + c.out.size() + k;
    for (auto& o : conns) {
      size_t held = o->in.size() + o->out.size();
      if (!o->dead && o.get() != &c && held > most) {
        hog = o.get();
        most = held;
      }
    }
    NODECCL_WARN("store", -1, 0, "store server: dropped a client holding ", most, " bytes: the "
                 "server would pass ", limits.maxBufferedBytes >> 20, " MiB buffered for all "
                 "clients (NODECCL_STORE_MAX_BUFFERED_MB)");
    hog->dead = true;
    if (hog == &c) return false;
    buffered -= most;
    std::string().swap(hog->in);
    std::string().swap(hog->out);
    hog->inOff = hog->outOff = 0;
  }
  return true;
}

void TcpStoreServer::Impl::readConn(Conn& c) {
  if (c.dead) return;
  char buf[65536];
  for (;;) {
    ssize_t k = ::recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (k > 0) {
      if (!makeRoom(c, static_cast<size_t>(k))) return;
      buffered += static_cast<size_t>(k);
      c.in.append(buf, static_cast<size_t>(k));
      // Before authenticating a client has nothing to send beyond its answer: cap the buffer.
      if (!c.authed && c.in.size() > 4 * auth::kResponseBytes) {
        NODECCL_WARN("store", -1, 0, "store server: dropped a client that sent ", c.in.size(),
                     " bytes before authenticating (not a nodeccl client?)");
        c.dead = true;
        return;
      }
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    c.dead = true;  // EOF or a reset: the client left; its parked request goes with it
    return;
  }
}

void TcpStoreServer::Impl::writeConn(Conn& c) {
  while (c.outOff < c.out.size()) {
    ssize_t k = ::send(c.fd.get(), c.out.data() + c.outOff, c.out.size() - c.outOff,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0) {
      c.outOff += static_cast<size_t>(k);
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    c.dead = true;
    return;
  }
  c.out.clear();
  c.outOff = 0;
}

// One pass over every connection: answers parked requests whose keys appeared or whose
// deadline passed, then runs the requests queued behind them. True when anything happened
// (a change may unpark another connection, so the caller repeats until a quiet pass).
bool TcpStoreServer::Impl::progress() {
  bool any = false;
  for (auto& c : conns) {
    if (c->dead) continue;
    // The server thread must survive anything one request does (e.g. running out of memory
    // for a huge value): that client is dropped, the others are served on.
    try {
      if (!c->authed) {
        if (!authenticate(*c)) {
          any |= c->dead;  // a refusal may have set kRefusedClientsKey: run another pass
          continue;
        }
        any = true;
      }
      if (c->parked) any |= answerParked(*c);
      if (!c->parked) any |= processFrames(*c);
    } catch (const std::exception& e) {
      NODECCL_WARN("store", -1, 0, "store server: dropping a client whose request failed: ",
                   e.what());
      c->dead = true;
    }
  }
  return any;
}

// ---- requests ---------------------------------------------------------------------------

// Parses and runs complete frames until the connection parks or runs out of input.
bool TcpStoreServer::Impl::processFrames(Conn& c) {
  bool any = false;
  while (!c.parked && !c.dead && !outBacklog(c) && c.in.size() - c.inOff >= 4) {
    const char* p = c.in.data() + c.inOff;
    uint32_t len = net::getU32(reinterpret_cast<const unsigned char*>(p));
    if (len < kHeaderBytes - 4 || len > kMaxFrameBytes) {
      NODECCL_WARN("store", -1, 0, "store server: dropping a client that sent a frame of ", len,
                   " bytes; frames are ", kHeaderBytes - 4, " bytes to ", kMaxFrameBytes >> 20,
                   " MiB (not a nodeccl store client?)");
      c.dead = true;
      break;
    }
    if (c.in.size() - c.inOff < 4 + static_cast<size_t>(len)) break;
    uint32_t id = net::getU32(reinterpret_cast<const unsigned char*>(p + 4));
    uint8_t cmd = static_cast<uint8_t>(p[8]);
    Reader r(p + kHeaderBytes, len - (kHeaderBytes - 4));
    dispatch(c, id, cmd, r);
    c.inOff += 4 + static_cast<size_t>(len);
    any = true;
  }
  if (c.inOff > 0 && (c.inOff == c.in.size() || c.inOff > (1u << 20))) {
    c.in.erase(0, c.inOff);
    c.inOff = 0;
  }
  return any;
}

// Checks the client's answer to the challenge once it has arrived; true when the client is
// now authenticated. A refused or too slow client gets the verdict and is dropped, logged.
bool TcpStoreServer::Impl::authenticate(Conn& c) {
  if (c.in.size() < auth::kResponseBytes) {
    if (net::Clock::now() < c.authBy) return false;
    NODECCL_WARN("store", -1, 0, "store server: dropped a client that did not authenticate "
                 "within ", kAuthTimeout.count(), " ms");
    c.dead = true;
    return false;
  }
  bool ok = false;
  std::string why;
  c.out += auth::verdict(token, c.authState,
                         reinterpret_cast<const unsigned char*>(c.in.data()), &ok, &why);
  c.in.erase(0, auth::kResponseBytes);
  if (!ok) {
    NODECCL_WARN("store", -1, 0, "store server: refused a client at ", c.peer, ": ", why,
                 "; every process of the job needs the same NODECCL_TOKEN");
    writeConn(c);
    c.dead = true;
    // Recorded for the job's ranks (kRefusedClientsKey), so that a rank whose token differs
    // is named in its peers' init errors. A failed put (store full) only loses that hint.
    std::string ignored;
    putValue(kRefusedClientsKey, strcat(++refusedClients, " ", c.peer), &ignored);
    return false;
  }
  c.authed = true;
  return true;
}

static void reply(Conn& c, Writer&& w) { c.out += w.take(); }

static bool replyError(Conn& c, uint32_t id, const std::string& msg) {
  Writer w(id, kError);
  w.bytes(msg);
  reply(c, std::move(w));
  return false;
}

// Runs one request; true when it changed the data (which may unpark other connections).
bool TcpStoreServer::Impl::dispatch(Conn& c, uint32_t id, uint8_t cmd, Reader& r) {
  switch (cmd) {
    case kSet: {
      std::string key = r.bytes();
      std::string value = r.bytes();
      if (!r.ok()) return replyError(c, id, "nodeccl store: malformed set request");
      std::string why;
      if (!putValue(key, std::move(value), &why)) return replyError(c, id, why);
      reply(c, Writer(id, kOk));
      return true;
    }
    case kGet:
    case kWait: return park(c, id, cmd, r);
    case kAdd: return handleAdd(c, id, r);
    case kCompareSet: return handleCompareSet(c, id, r);
    case kDel:
    case kExists: {
      std::string key = r.bytes();
      if (!r.ok()) return replyError(c, id, "nodeccl store: malformed del/exists request");
      bool present = data.count(key) > 0;
      if (cmd == kDel && present) {
        auto it = data.find(key);
        stored -= it->first.size() + it->second.size();
        data.erase(it);
      }
      Writer w(id, kOk);
      w.u8(present ? 1 : 0);
      reply(c, std::move(w));
      return false;
    }
    default:
      return replyError(c, id, strcat("nodeccl store: unknown request code ", int(cmd),
                                      "; are the client and server the same nodeccl version?"));
  }
}

// Parks a get/wait on its connection; answerParked replies at once when the keys are there.
bool TcpStoreServer::Impl::park(Conn& c, uint32_t id, uint8_t cmd, Reader& r) {
  std::vector<std::string> keys;
  uint32_t n = cmd == kGet ? 1 : r.u32();
  for (uint32_t i = 0; i < n && r.ok(); ++i) keys.push_back(r.bytes());
  uint64_t timeoutMs = std::min<uint64_t>(r.u64(), uint64_t(1) << 40);
  if (!r.ok()) return replyError(c, id, "nodeccl store: malformed get/wait request");
  c.parked = true;
  c.parkedCmd = cmd;
  c.parkedId = id;
  c.parkedKeys = std::move(keys);
  c.parkedDeadline = net::deadlineAfter(Millis(static_cast<int64_t>(timeoutMs)));
  answerParked(c);
  return false;
}

bool TcpStoreServer::Impl::handleAdd(Conn& c, uint32_t id, Reader& r) {
  std::string key = r.bytes();
  int64_t delta = static_cast<int64_t>(r.u64());
  if (!r.ok()) return replyError(c, id, "nodeccl store: malformed add request");
  bool ok = false;
  std::string result = doAdd(key, delta, &ok);
  if (!ok) return replyError(c, id, result);
  Writer w(id, kOk);
  w.u64(static_cast<uint64_t>(std::strtoll(result.c_str(), nullptr, 10)));
  reply(c, std::move(w));
  return true;
}

bool TcpStoreServer::Impl::handleCompareSet(Conn& c, uint32_t id, Reader& r) {
  std::string key = r.bytes();
  std::string expected = r.bytes();
  bool expectAbsent = r.u8() != 0;
  std::string desired = r.bytes();
  if (!r.ok()) return replyError(c, id, "nodeccl store: malformed compareSet request");
  auto it = data.find(key);
  bool match = it == data.end() ? expectAbsent : (!expectAbsent && it->second == expected);
  if (match) {
    std::string why;
    if (!putValue(key, std::move(desired), &why)) return replyError(c, id, why);
    it = data.find(key);
  }
  Writer w(id, kOk);
  w.u8(it != data.end() ? 1 : 0);
  w.bytes(it != data.end() ? it->second : std::string());
  reply(c, std::move(w));
  return match;
}

// Integers are stored as decimal text, so get() of a counter returns e.g. "3".
std::string TcpStoreServer::Impl::doAdd(const std::string& key, int64_t delta, bool* ok) {
  int64_t value = 0;
  auto it = data.find(key);
  if (it != data.end()) {
    errno = 0;
    char* end = nullptr;
    value = std::strtoll(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0' || errno != 0) {
      *ok = false;
      return strcat("nodeccl store: add(", printableKey(key), ") found the value ",
                    printableKey(it->second), ", which is not an integer; use a separate key "
                    "for counters");
    }
  }
  value += delta;
  *ok = true;
  std::string text = std::to_string(value);
  std::string why;
  if (!putValue(key, std::string(text), &why)) {
    *ok = false;
    return why;
  }
  return text;
}

// Stores `value` under `key` unless the store would pass maxStoredBytes (then *why says so).
bool TcpStoreServer::Impl::putValue(const std::string& key, std::string&& value,
                                    std::string* why) {
  auto it = data.find(key);
  size_t old = it == data.end() ? 0 : key.size() + it->second.size();
  size_t after = stored - old + key.size() + value.size();
  if (after > limits.maxStoredBytes) {
    *why = strcat("nodeccl store: setting ", printableKey(key), " to ", value.size(),
                  " bytes would take the store past its limit of ", limits.maxStoredBytes >> 20,
                  " MiB of keys and values (NODECCL_STORE_MAX_STORED_MB); delete keys that are "
                  "no longer needed, or raise the limit on the process that runs the store");
    return false;
  }
  if (it == data.end()) {
    data.emplace(key, std::move(value));
  } else {
    it->second = std::move(value);
  }
  stored = after;
  return true;
}

StoreLimits StoreLimits::fromEnv() {
  StoreLimits l;
  l.maxConnections = envSize("NODECCL_STORE_MAX_CONNECTIONS", l.maxConnections, 1);
  l.maxBufferedBytes = envSize("NODECCL_STORE_MAX_BUFFERED_MB", l.maxBufferedBytes, 1u << 20);
  l.maxStoredBytes = envSize("NODECCL_STORE_MAX_STORED_MB", l.maxStoredBytes, 1u << 20);
  return l;
}

// Answers a parked get/wait when its keys exist (kOk) or its deadline passed (kTimeout, with
// the missing keys for wait). True when it answered.
bool TcpStoreServer::Impl::answerParked(Conn& c) {
  std::vector<const std::string*> missing;
  for (const std::string& k : c.parkedKeys) {
    if (data.count(k) == 0) missing.push_back(&k);
  }
  bool expired = net::Clock::now() >= c.parkedDeadline;
  if (!missing.empty() && !expired) return false;
  if (missing.empty()) {
    Writer w(c.parkedId, kOk);
    if (c.parkedCmd == kGet) w.bytes(data[c.parkedKeys[0]]);
    reply(c, std::move(w));
  } else {
    Writer w(c.parkedId, kTimeout);
    w.u32(static_cast<uint32_t>(missing.size()));
    for (const std::string* k : missing) w.bytes(*k);
    reply(c, std::move(w));
  }
  c.parked = false;
  c.parkedKeys.clear();
  return true;
}

}  // namespace nodeccl
