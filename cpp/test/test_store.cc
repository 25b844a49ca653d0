// SPDX-License-Identifier: Apache-2.0
// Tests of the TCP store: every request, parked waits and their timeouts, concurrency,
// connection errors and close() from another thread.
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "store/protocol.h"
#include "store/store.h"
#include "transport/tcp/socket.h"
#include "test/harness.h"

using namespace nodeccl;

namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::unique_ptr<TcpStoreClient> client(const TcpStoreServer& s) {
  return std::make_unique<TcpStoreClient>("127.0.0.1", s.port(), Millis(2000));
}

}  // namespace

NODECCL_TEST(store_set_get_add_del_exists) {
  TcpStoreServer server("127.0.0.1", 0);
  auto c = client(server);
  c->set("a", "1");
  EXPECT_EQ(c->get("a", Millis(100)), std::string("1"));
  c->set("a", "two");  // overwrite
  EXPECT_EQ(c->get("a", Millis(100)), std::string("two"));
  EXPECT_TRUE(c->exists("a"));
  EXPECT_TRUE(!c->exists("b"));

  // add: absent counts as 0; the value reads back as decimal text.
  EXPECT_EQ(c->add("n", 5), int64_t(5));
  EXPECT_EQ(c->add("n", -7), int64_t(-2));
  EXPECT_EQ(c->get("n", Millis(100)), std::string("-2"));
  EXPECT_THROWS_CODE(c->add("a", 1), ErrorCode::kStore, "not an integer");

  EXPECT_TRUE(c->del("a"));
  EXPECT_TRUE(!c->del("a"));
  EXPECT_TRUE(!c->exists("a"));
}

NODECCL_TEST(store_binary_and_large_values) {
  TcpStoreServer server("127.0.0.1", 0);
  auto c = client(server);
  std::string key("k\0\xff\n", 4), value("\0\1\2\0", 4);
  c->set(key, value);
  EXPECT_TRUE(c->get(key, Millis(100)) == value);
  EXPECT_TRUE(c->get(key, Millis(100)).size() == 4);
  c->set("empty", "");
  EXPECT_EQ(c->get("empty", Millis(100)), std::string());
  std::string big(8 << 20, 'x');
  big[12345] = 'y';
  c->set("big", big);
  EXPECT_TRUE(c->get("big", Millis(2000)) == big);
}

NODECCL_TEST(store_compare_set) {
  TcpStoreServer server("127.0.0.1", 0);
  auto c = client(server);
  // Absent key: matches only expectAbsent.
  EXPECT_EQ(c->compareSet("k", "x", false, "v1"), std::string(""));
  EXPECT_TRUE(!c->exists("k"));
  EXPECT_EQ(c->compareSet("k", "", true, "v1"), std::string("v1"));
  // Present key: expectAbsent fails and returns the current value (first writer wins).
  EXPECT_EQ(c->compareSet("k", "", true, "v2"), std::string("v1"));
  EXPECT_EQ(c->compareSet("k", "nope", false, "v3"), std::string("v1"));
  EXPECT_EQ(c->compareSet("k", "v1", false, "v3"), std::string("v3"));
}

NODECCL_TEST(store_get_and_wait_timeouts) {
  TcpStoreServer server("127.0.0.1", 0);
  auto c = client(server);
  auto t0 = Clock::now();
  EXPECT_THROWS_CODE(c->get("never", Millis(200)), ErrorCode::kTimeout, "'never'");
  double ms = msSince(t0);
  EXPECT_TRUE(ms >= 190 && ms < 1000);

  c->set("there", "1");
  t0 = Clock::now();
  EXPECT_THROWS_CODE(c->wait({"there", "gone1", "gone2"}, Millis(200)), ErrorCode::kTimeout,
                           "still missing: 'gone1', 'gone2'");
  EXPECT_TRUE(msSince(t0) < 1000);
  // The connection is still usable after a timeout.
  EXPECT_EQ(c->get("there", Millis(100)), std::string("1"));
  c->wait({}, Millis(10));
  c->wait({"there"}, Millis(0));
}

NODECCL_TEST(store_parked_get_answered_by_later_set) {
  TcpStoreServer server("127.0.0.1", 0);
  auto waiter = client(server);
  auto setter = client(server);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    setter->set("late", "value");
    setter->set("late2", "x");
  });
  auto t0 = Clock::now();
  EXPECT_EQ(waiter->get("late", Millis(5000)), std::string("value"));
  waiter->wait({"late", "late2"}, Millis(5000));
  EXPECT_TRUE(msSince(t0) < 2000);
  t.join();
}

NODECCL_TEST(store_add_concurrency) {
  // 4 clients x 200 adds on one key: the server serializes them, nothing is lost.
  TcpStoreServer server("127.0.0.1", 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      auto c = client(server);
      for (int k = 0; k < 200; ++k) c->add("counter", 1);
    });
  }
  // Plus two threads sharing one client (requests are serialized by the client).
  auto shared = client(server);
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 100; ++k) shared->add("counter", 1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(shared->add("counter", 0), int64_t(1000));
}

NODECCL_TEST(store_port_in_use) {
  TcpStoreServer first("127.0.0.1", 0);
  EXPECT_THROWS_CODE(TcpStoreServer("127.0.0.1", first.port()), ErrorCode::kIo,
                           "address already in use; pick another MASTER_PORT");
  EXPECT_THROWS_CODE(TcpStoreServer("127.0.0.1", 70000), ErrorCode::kInvalidArgument, "70000");
}

NODECCL_TEST(store_connect_timeout_and_late_server) {
  // Find a free port, then nobody listens on it.
  int port;
  {
    TcpStoreServer probe("127.0.0.1", 0);
    port = probe.port();
  }
  auto t0 = Clock::now();
  EXPECT_THROWS_CODE(TcpStoreClient("127.0.0.1", port, Millis(200)), ErrorCode::kTimeout,
                           "127.0.0.1:" + std::to_string(port));
  EXPECT_TRUE(msSince(t0) < 1000);

  // A server that starts after the client began connecting is found by the retries.
  std::unique_ptr<TcpStoreServer> late;
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    late = std::make_unique<TcpStoreServer>("127.0.0.1", port);
  });
  TcpStoreClient c("127.0.0.1", port, Millis(3000));
  t.join();
  c.set("k", "v");
  EXPECT_EQ(c.get("k", Millis(100)), std::string("v"));
}

NODECCL_TEST(store_close_unblocks_get) {
  TcpStoreServer server("127.0.0.1", 0);
  auto c = client(server);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    c->close();
  });
  auto t0 = Clock::now();
  EXPECT_THROWS_CODE(c->get("never", Millis(10000)), ErrorCode::kAborted, "closed");
  EXPECT_TRUE(msSince(t0) < 1000);
  t.join();
  EXPECT_THROWS_CODE(c->set("k", "v"), ErrorCode::kAborted, "closed");
}

NODECCL_TEST(store_server_stop_fails_clients) {
  auto server = std::make_unique<TcpStoreServer>("127.0.0.1", 0);
  auto c = client(*server);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    server->stop();
  });
  auto t0 = Clock::now();
  EXPECT_THROWS_CODE(c->get("never", Millis(10000)), ErrorCode::kStore, "lost connection");
  EXPECT_TRUE(msSince(t0) < 1000);
  t.join();
  EXPECT_THROWS_CODE(c->exists("k"), ErrorCode::kStore, "lost connection");
}

NODECCL_TEST(store_hostnames_and_ipv6) {
  TcpStoreServer server("localhost", 0);
  TcpStoreClient byName("localhost", server.port(), Millis(2000));
  byName.set("k", "v");
  EXPECT_EQ(byName.get("k", Millis(100)), std::string("v"));
  EXPECT_TRUE(!byName.localHost().empty());

  // IPv6 loopback, when this machine has it.
  std::unique_ptr<TcpStoreServer> v6;
  try {
    v6 = std::make_unique<TcpStoreServer>("::1", 0);
  } catch (const Error&) {
    return;  // no IPv6 here
  }
  TcpStoreClient c6("::1", v6->port(), Millis(2000));
  c6.set("k6", "v6");
  EXPECT_EQ(c6.get("k6", Millis(100)), std::string("v6"));
  EXPECT_EQ(c6.localHost(), std::string("::1"));
  EXPECT_EQ(c6.serverAddress(), "[::1]:" + std::to_string(v6->port()));
}

NODECCL_TEST(store_clone_is_independent) {
  TcpStoreServer server("127.0.0.1", 0);
  auto c = std::make_shared<TcpStoreClient>("127.0.0.1", server.port(), Millis(2000));
  std::shared_ptr<Store> other = c->clone();
  // A get parked on the clone does not hold up requests on the original.
  std::thread t([&] { EXPECT_EQ(other->get("later", Millis(5000)), std::string("x")); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto t0 = Clock::now();
  c->set("later", "x");
  EXPECT_TRUE(msSince(t0) < 500);
  t.join();
}

// Reads until the server closes the connection (true), or 5 s pass (false); *got: bytes read.
static bool closedByServer(int fd, size_t* got) {
  unsigned char b[4096];
  *got = 0;
  auto until = net::deadlineAfter(Millis(5000));
  while (net::Clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, net::msUntil(until)) <= 0) continue;
    ssize_t k = ::recv(fd, b, sizeof(b), MSG_DONTWAIT);
    if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN)) return true;
    if (k > 0) *got += size_t(k);
  }
  return false;
}

NODECCL_TEST(store_rejects_garbage_client) {
  // A client that answers the challenge with junk, or floods bytes before authenticating, is
  // dropped (and its buffer bounded); the server keeps serving the real client.
  TcpStoreServer server("127.0.0.1", 0, "");
  auto c = client(server);
  for (size_t junkBytes : {size_t(64), size_t(1) << 20}) {
    net::Fd raw = net::connectTcp("127.0.0.1", server.port(), net::deadlineAfter(Millis(2000)),
                                  "test", "");
    std::string junk(junkBytes, '\xff');
    int err = 0;
    net::sendAll(raw.get(), junk.data(), junk.size(), net::deadlineAfter(Millis(1000)), -1,
                 &err);
    size_t got = 0;
    EXPECT_TRUE(closedByServer(raw.get(), &got));
    EXPECT_TRUE(got <= auth::kChallengeBytes + auth::kVerdictBytes);
  }
  c->set("still", "ok");
  EXPECT_EQ(c->get("still", Millis(100)), std::string("ok"));
}

NODECCL_TEST(store_job_token) {
  // Same token: served. Wrong token, no token, or a token the server does not use: refused
  // with a clear error on the client (the server logs its side), and the server serves on.
  TcpStoreServer server("127.0.0.1", 0, "job-secret-1");
  TcpStoreClient good("127.0.0.1", server.port(), Millis(2000), Millis(5000), "job-secret-1");
  good.set("k", "v");
  EXPECT_THROWS_CODE(TcpStoreClient("127.0.0.1", server.port(), Millis(2000), Millis(5000),
                                    "job-secret-2"),
                     ErrorCode::kIo, "refused this process's job token");
  EXPECT_THROWS_CODE(TcpStoreClient("127.0.0.1", server.port(), Millis(2000), Millis(5000), ""),
                     ErrorCode::kIo, "requires a job token and this process has none");
  TcpStoreServer open("127.0.0.1", 0, "");
  EXPECT_THROWS_CODE(TcpStoreClient("127.0.0.1", open.port(), Millis(2000), Millis(5000), "t"),
                     ErrorCode::kIo, "has no job token while this process has one");
  EXPECT_EQ(good.get("k", Millis(100)), std::string("v"));
  auto twin = good.clone();  // a clone keeps the token
  EXPECT_EQ(twin->get("k", Millis(100)), std::string("v"));
}

// A raw connection that passes the token-less authentication as a process without a token
// does (auth.h: the challenge's magic, hasToken 0, a nonce, a zero MAC), so that what it sends
// next reaches the server's frame parser.
static net::Fd rawAuthed(int port) {
  net::Fd fd = net::connectTcp("127.0.0.1", port, net::deadlineAfter(Millis(2000)), "test", "");
  unsigned char ch[auth::kChallengeBytes], resp[auth::kResponseBytes] = {};
  unsigned char verdict[auth::kVerdictBytes];
  int err = 0;
  auto by = net::deadlineAfter(Millis(2000));
  EXPECT_TRUE(net::recvAll(fd.get(), ch, sizeof(ch), by, -1, &err) == net::IoStatus::kDone);
  std::memcpy(resp, ch, 4);
  for (int i = 0; i < 16; ++i) resp[5 + i] = static_cast<unsigned char>(i * 37 + 1);
  EXPECT_TRUE(net::sendAll(fd.get(), resp, sizeof(resp), by, -1, &err) == net::IoStatus::kDone);
  EXPECT_TRUE(net::recvAll(fd.get(), verdict, sizeof(verdict), by, -1, &err) ==
              net::IoStatus::kDone);
  return fd;
}

// Sends a frame header claiming `len` bytes, then `body` bytes of it (never completed).
static void sendClaim(int fd, uint32_t len, size_t body) {
  std::string f(9 + body, 'z');
  unsigned char* p = reinterpret_cast<unsigned char*>(&f[0]);
  net::putU32(p, len);
  net::putU32(p + 4, 1);
  p[8] = 1;  // set
  int err = 0;
  net::sendAll(fd, f.data(), f.size(), net::deadlineAfter(Millis(2000)), -1, &err);
}

NODECCL_TEST(store_limits) {
  // The client refuses a request past kMaxFrameBytes before sending it, naming the limit.
  {
    TcpStoreServer server("127.0.0.1", 0, "");
    auto c = client(server);
    EXPECT_THROWS_CODE(c->set("huge", std::string(storeproto::kMaxFrameBytes, 'x')),
                       ErrorCode::kInvalidArgument, "limit of 64 MiB per request");
    c->set("after", "ok");  // the connection is still in step
    EXPECT_EQ(c->get("after", Millis(100)), std::string("ok"));
  }

  // Small limits: 3 connections, 1 MiB buffered, 1 MiB stored.
  StoreLimits lim;
  lim.maxConnections = 3;
  lim.maxBufferedBytes = size_t(1) << 20;
  lim.maxStoredBytes = size_t(1) << 20;
  TcpStoreServer server("127.0.0.1", 0, "", lim);
  auto c = client(server);

  // Stored bytes: 600 KiB fits, a second 600 KiB does not; replacing or deleting frees room.
  const std::string v600(600 << 10, 'v');
  c->set("a", v600);
  EXPECT_THROWS_CODE(c->set("b", v600), ErrorCode::kStore, "limit of 1 MiB of keys and values");
  EXPECT_THROWS_CODE(c->compareSet("b", "", true, v600), ErrorCode::kStore, "limit of 1 MiB");
  c->set("a", v600);  // replaces: still 600 KiB in all
  EXPECT_TRUE(c->del("a"));
  c->set("b", v600);
  EXPECT_TRUE(c->get("b", Millis(1000)) == v600);

  // A frame claiming more than kMaxFrameBytes is refused before any of it is buffered.
  {
    net::Fd raw = rawAuthed(server.port());
    sendClaim(raw.get(), storeproto::kMaxFrameBytes + 1, 64);
    size_t got = 0;
    EXPECT_TRUE(closedByServer(raw.get(), &got));
    EXPECT_EQ(got, size_t(0));
  }
  // A frame within kMaxFrameBytes whose bytes pass the 1 MiB buffered for all clients.
  {
    net::Fd raw = rawAuthed(server.port());
    sendClaim(raw.get(), 4u << 20, 3u << 19);
    size_t got = 0;
    EXPECT_TRUE(closedByServer(raw.get(), &got));
  }
  EXPECT_TRUE(c->get("b", Millis(1000)) == v600);

  // Connections: the client and two raw ones make 3; a fourth is closed with no challenge.
  net::Fd r1 = rawAuthed(server.port()), r2 = rawAuthed(server.port());
  net::Fd r3 = net::connectTcp("127.0.0.1", server.port(), net::deadlineAfter(Millis(2000)),
                               "test", "");
  size_t got = 0;
  EXPECT_TRUE(closedByServer(r3.get(), &got));
  EXPECT_EQ(got, size_t(0));
  r1.reset();  // room again once one leaves
  std::this_thread::sleep_for(Millis(200));
  net::Fd r4 = rawAuthed(server.port());
  EXPECT_TRUE(r4.valid());
  c->set("c", "1");
  EXPECT_EQ(c->get("c", Millis(1000)), std::string("1"));
}
