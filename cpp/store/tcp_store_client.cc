// SPDX-License-Identifier: Apache-2.0
// The TCP store client: one connection, requests serialized by a mutex, each answer matched to
// its request by id. Waits are parked on the server (the request carries the timeout); the
// client also enforces the deadline itself, with a little grace so the server's answer, which
// names the missing keys, normally arrives first. close() shuts the socket down, which wakes a
// request blocked in poll() on another thread; that request then throws kAborted.
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <functional>
#include <mutex>

#include "common/error.h"
#include "common/log.h"
#include "store/protocol.h"
#include "store/store.h"
#include "transport/tcp/socket.h"

namespace nodeccl {

using namespace storeproto;

namespace {

// Extra time the client waits beyond a get/wait timeout for the server's own answer.
constexpr Millis kWaitGrace(500);
// Longer waits are cut to this (~35 years), so that adding the grace cannot overflow.
constexpr Millis kMaxWait(int64_t(1) << 40);

Millis clampWait(Millis t) { return t < Millis(0) ? Millis(0) : std::min(t, kMaxWait); }

struct Answer {
  uint8_t code = 0;
  std::string body;
};

}  // namespace

struct TcpStoreClient::Impl {
  std::string host;
  int port = 0;
  Millis connectTimeout;
  Millis ioTimeout;
  std::string token;  // the job token (auth.h), kept for clone()
  net::Fd fd;
  std::atomic<bool> closed{false};

  std::mutex mu;          // serializes requests; guards everything below
  uint32_t nextId = 1;
  std::string in;         // received bytes not yet consumed
  std::string brokenWhy;  // non-empty once the connection is lost

  std::string where() const { return net::joinHostPort(host, port); }
  bool call(uint8_t cmd, const std::function<void(Writer&)>& body, net::Deadline answerBy,
            const std::string& what, Answer* out);
  Answer quickCall(uint8_t cmd, const std::function<void(Writer&)>& body,
                   const std::string& what);
  bool readAnswer(uint32_t id, net::Deadline answerBy, const std::string& what, Answer* out);
  bool takeFrame(uint32_t id, Answer* out);
  [[noreturn]] void lost(const std::string& what, const std::string& why);
  [[noreturn]] void throwClosed(const std::string& what);
};

// ---- request plumbing -------------------------------------------------------------------

void TcpStoreClient::Impl::throwClosed(const std::string& what) {
  throw Error(ErrorCode::kAborted, strcat("nodeccl store: ", what, " on ", where(),
                                          " was interrupted: the client was closed"));
}

// Marks the connection unusable and throws kStore (kAborted when close() caused it).
void TcpStoreClient::Impl::lost(const std::string& what, const std::string& why) {
  if (closed.load()) throwClosed(what);
  brokenWhy = strcat("nodeccl store: lost connection to ", where(), " during ", what, " (", why,
                     "); the store server (usually in rank 0's process) probably exited or "
                     "crashed — check its output");
  throw Error(ErrorCode::kStore, brokenWhy);
}

// Sends one request built by `body` and waits for its answer until `answerBy`.
// False when the deadline passed first.
bool TcpStoreClient::Impl::call(uint8_t cmd, const std::function<void(Writer&)>& body,
                                net::Deadline answerBy, const std::string& what, Answer* out) {
  std::lock_guard<std::mutex> lock(mu);
  if (closed.load()) throwClosed(what);
  if (!brokenWhy.empty()) throw Error(ErrorCode::kStore, brokenWhy);
  uint32_t id = nextId++;
  Writer w(id, cmd);
  body(w);
  std::string frame = w.take();
  if (frame.size() - 4 > kMaxFrameBytes) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("nodeccl store: ", what, " needs a request of ", frame.size() - 4,
                       " bytes, above the store's limit of ", kMaxFrameBytes >> 20,
                       " MiB per request; keep store values small and send large data "
                       "through a communicator (e.g. broadcast)"));
  }

  int err = 0;
  net::IoStatus st = net::sendAll(fd.get(), frame.data(), frame.size(),
                                  net::deadlineAfter(ioTimeout), -1, &err);
  if (st == net::IoStatus::kTimeout) {
    lost(what, strcat("could not send the request within ", ioTimeout.count(), " ms"));
  }
  if (st != net::IoStatus::kDone) {
    lost(what, st == net::IoStatus::kClosed ? "connection closed by the server"
                                            : net::errnoText(err));
  }
  return readAnswer(id, answerBy, what, out);
}

// Reads frames until the one answering `id` (earlier, abandoned answers are dropped).
bool TcpStoreClient::Impl::readAnswer(uint32_t id, net::Deadline answerBy,
                                      const std::string& what, Answer* out) {
  char buf[65536];
  for (;;) {
    if (takeFrame(id, out)) return true;
    pollfd p{fd.get(), POLLIN, 0};
    int n = ::poll(&p, 1, net::msUntil(answerBy));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) lost(what, strcat("poll(): ", net::errnoText(errno)));
    if (n == 0) {
      if (net::Clock::now() >= answerBy) return false;
      continue;
    }
    ssize_t k = ::recv(fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (k > 0) {
      in.append(buf, static_cast<size_t>(k));
    } else if (k == 0) {
      lost(what, "connection closed by the server");
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      lost(what, net::errnoText(errno));
    }
  }
}

// Pops complete frames off `in`; true once the answer to `id` is in *out.
bool TcpStoreClient::Impl::takeFrame(uint32_t id, Answer* out) {
  while (in.size() >= 4) {
    uint32_t len = net::getU32(reinterpret_cast<const unsigned char*>(in.data()));
    if (len < kHeaderBytes - 4 || len > kMaxFrameBytes) {
      lost("reading an answer", strcat("corrupt frame of ", len, " bytes"));
    }
    if (in.size() < 4 + static_cast<size_t>(len)) return false;
    uint32_t got = net::getU32(reinterpret_cast<const unsigned char*>(in.data() + 4));
    uint8_t code = static_cast<uint8_t>(in[8]);
    std::string body = in.substr(kHeaderBytes, len - (kHeaderBytes - 4));
    in.erase(0, 4 + static_cast<size_t>(len));
    if (got == id) {
      out->code = code;
      out->body = std::move(body);
      return true;
    }
  }
  return false;
}

// ---- public API -------------------------------------------------------------------------

TcpStoreClient::TcpStoreClient(const std::string& host, int port, Millis connectTimeout,
                               Millis ioTimeout, const std::string& token)
    : impl_(new Impl) {
  impl_->token = token;
  impl_->host = host;
  impl_->port = port;
  impl_->connectTimeout = connectTimeout;
  impl_->ioTimeout = ioTimeout;
  impl_->fd = net::connectTcp(host, port, net::deadlineAfter(connectTimeout), "nodeccl store",
                              "check MASTER_ADDR and MASTER_PORT, and that the store server "
                              "(usually rank 0) is running");
  net::setNoDelay(impl_->fd.get());
  auth::clientHandshake(impl_->fd.get(), token,
                        net::deadlineAfter(std::max(connectTimeout, Millis(5000))),
                        "nodeccl store client", strcat("the store at ", impl_->where()));
  NODECCL_TRACE("store", -1, 0, "store client connected to ", impl_->where());
}

TcpStoreClient::~TcpStoreClient() = default;

void TcpStoreClient::close() {
  if (impl_->closed.exchange(true)) return;
  // shutdown first, so that a thread blocked on the fd in a request wakes up and fails; then,
  // once no request holds the mutex (every use of the fd is under it), close the descriptor,
  // so that a closed client holds none even while the object lives on (JS keeps it until GC).
  ::shutdown(impl_->fd.get(), SHUT_RDWR);
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->fd.reset();
}

std::shared_ptr<Store> TcpStoreClient::clone() {
  return std::make_shared<TcpStoreClient>(impl_->host, impl_->port, impl_->connectTimeout,
                                          impl_->ioTimeout, impl_->token);
}

std::string TcpStoreClient::localHost() const { return net::localHost(impl_->fd.get()); }

std::string TcpStoreClient::serverAddress() const { return impl_->where(); }

void TcpStoreClient::setIoTimeout(Millis ioTimeout) { impl_->ioTimeout = ioTimeout; }

void TcpStoreClient::setConnectTimeout(Millis connectTimeout) {
  impl_->connectTimeout = connectTimeout;
}

// Throws for an answer other than kOk (kTimeout is handled by the callers that wait).
static void checkOk(const Answer& a, const std::string& what) {
  if (a.code == kOk) return;
  Reader r(a.body.data(), a.body.size());
  std::string msg = a.code == kError ? r.bytes() : std::string();
  throw Error(ErrorCode::kStore, msg.empty() ? strcat("nodeccl store: ", what,
                                                      " failed with answer code ", int(a.code))
                                             : msg);
}

// The answer to a request that does not wait, due within ioTimeout.
Answer TcpStoreClient::Impl::quickCall(uint8_t cmd, const std::function<void(Writer&)>& body,
                                       const std::string& what) {
  Answer a;
  if (!call(cmd, body, net::deadlineAfter(ioTimeout), what, &a)) {
    throw Error(ErrorCode::kTimeout,
                strcat("nodeccl store: ", what, " got no answer from ", where(), " within ",
                       ioTimeout.count(), " ms; the store server may be overloaded or stuck"));
  }
  checkOk(a, what);
  return a;
}

void TcpStoreClient::set(const std::string& key, const std::string& value) {
  impl_->quickCall(kSet, [&](Writer& w) { w.bytes(key); w.bytes(value); },
            strcat("set(", printableKey(key), ")"));
}

std::string TcpStoreClient::get(const std::string& key, Millis timeout) {
  timeout = clampWait(timeout);
  std::string what = strcat("get(", printableKey(key), ")");
  Answer a;
  bool answered = impl_->call(
      kGet, [&](Writer& w) { w.bytes(key); w.u64(static_cast<uint64_t>(timeout.count())); },
      net::deadlineAfter(timeout + kWaitGrace), what, &a);
  if (!answered || a.code == kTimeout) {
    throw Error(ErrorCode::kTimeout,
                strcat("nodeccl store: ", what, " timed out after ", timeout.count(), " ms on ",
                       impl_->where(), ": the key was not set in time; check that the rank that "
                       "sets it is running and uses the same key"));
  }
  checkOk(a, what);
  Reader r(a.body.data(), a.body.size());
  return r.bytes();
}

int64_t TcpStoreClient::add(const std::string& key, int64_t delta) {
  Answer a = impl_->quickCall(kAdd,
                       [&](Writer& w) { w.bytes(key); w.u64(static_cast<uint64_t>(delta)); },
                       strcat("add(", printableKey(key), ")"));
  Reader r(a.body.data(), a.body.size());
  return static_cast<int64_t>(r.u64());
}

void TcpStoreClient::wait(const std::vector<std::string>& keys, Millis timeout) {
  timeout = clampWait(timeout);
  std::string what = strcat("wait(", keys.size(), " keys)");
  Answer a;
  bool answered = impl_->call(
      kWait,
      [&](Writer& w) {
        w.u32(static_cast<uint32_t>(keys.size()));
        for (const std::string& k : keys) w.bytes(k);
        w.u64(static_cast<uint64_t>(timeout.count()));
      },
      net::deadlineAfter(timeout + kWaitGrace), what, &a);
  if (answered && a.code != kTimeout) return checkOk(a, what);

  // Name the keys still missing (the server lists them; without its answer, all of them).
  std::vector<std::string> missing = keys;
  if (answered) {
    Reader r(a.body.data(), a.body.size());
    missing.assign(r.u32(), std::string());
    for (std::string& k : missing) k = r.bytes();
  }
  std::string list;
  for (size_t i = 0; i < missing.size() && i < 10; ++i) {
    list += (i ? ", " : "") + printableKey(missing[i]);
  }
  if (missing.size() > 10) list += strcat(" and ", missing.size() - 10, " more");
  throw Error(ErrorCode::kTimeout,
              strcat("nodeccl store: wait timed out after ", timeout.count(), " ms on ",
                     impl_->where(), "; still missing: ", list,
                     "; check that the ranks that set them are running"));
}

std::string TcpStoreClient::compareSet(const std::string& key, const std::string& expected,
                                       bool expectAbsent, const std::string& desired) {
  Answer a = impl_->quickCall(kCompareSet,
                       [&](Writer& w) {
                         w.bytes(key);
                         w.bytes(expected);
                         w.u8(expectAbsent ? 1 : 0);
                         w.bytes(desired);
                       },
                       strcat("compareSet(", printableKey(key), ")"));
  Reader r(a.body.data(), a.body.size());
  r.u8();  // present flag: an absent key reads as ""
  return r.bytes();
}

bool TcpStoreClient::del(const std::string& key) {
  Answer a = impl_->quickCall(kDel, [&](Writer& w) { w.bytes(key); },
                       strcat("del(", printableKey(key), ")"));
  return !a.body.empty() && a.body[0] != 0;
}

bool TcpStoreClient::exists(const std::string& key) {
  Answer a = impl_->quickCall(kExists, [&](Writer& w) { w.bytes(key); },
                       strcat("exists(", printableKey(key), ")"));
  return !a.body.empty() && a.body[0] != 0;
}

}  // namespace nodeccl
