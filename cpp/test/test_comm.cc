// SPDX-License-Identifier: Apache-2.0
// Tests of the communicator, the TCP transport and the executor: rendezvous over world sizes,
// sendRecv of large and empty messages, and every failure the group must survive (mismatch,
// timeout, a peer leaving, abort, init errors), with how fast the other ranks learn of it.
// Ranks are threads over loopback TCP (runWorld, or hand-made worlds for init failures).
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "coll/collectives.h"
#include "comm/communicator.h"
#include "comm/executor.h"
#include "common/dtype.h"
#include "common/error.h"
#include "test/harness.h"
#include "test/world.h"
#include "transport/tcp/interface.h"
#include "transport/tcp/socket.h"

using namespace nodeccl;
using nodeccl_test::runWorld;

namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Runs `stmt`, expecting an Error with one of two codes whose text contains `substr`;
// returns how long it took in ms.
template <typename F>
double expectFailure(F stmt, ErrorCode a, ErrorCode b, const std::string& substr,
                     const char* where) {
  auto t0 = Clock::now();
  try {
    stmt();
    nodeccl_test::fail(std::string(where) + ": expected an error containing '" + substr + "'");
  } catch (const Error& e) {
    std::string what = e.what();
    if ((e.code() != a && e.code() != b) || what.find(substr) == std::string::npos) {
      nodeccl_test::fail(std::string(where) + ": wrong error: " + errorCodeName(e.code()) + " " +
                         what);
    }
  }
  return msSince(t0);
}

// A world built by hand (for init failures): one store server, one thread per entry.
void runRanks(const std::vector<CommOptions>& all,
              const std::function<void(size_t i, std::shared_ptr<Store> store)>& fn) {
  TcpStoreServer server("127.0.0.1", 0);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < all.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        fn(i, std::make_shared<TcpStoreClient>("127.0.0.1", server.port(), Millis(2000)));
      } catch (const std::exception& e) {
        nodeccl_test::fail("entry " + std::to_string(i) + ": " + e.what());
      }
    });
  }
  for (auto& t : threads) t.join();
}

// runWorld once over each transport (TCP, then shared memory), for the failure tests.
void runEach(int size, const std::function<void(Communicator&)>& fn) {
  for (const char* t : {"tcp", "shm"}) {
    CommOptions base;
    base.transport = t;
    runWorld(size, fn, base);
  }
}

CommOptions options(int rank, int size, const std::string& prefix, Millis initTimeout) {
  CommOptions o;
  o.rank = rank;
  o.size = size;
  o.prefix = prefix;
  o.initTimeout = initTimeout;
  return o;
}

}  // namespace

// ---- rendezvous and data movement ---------------------------------------------------------

NODECCL_TEST(comm_rendezvous_sizes) {
  for (int size : {1, 2, 3, 5, 8}) {
    runWorld(size, [&](Communicator& c) {
      EXPECT_EQ(c.size(), size);
      EXPECT_EQ(c.firstError(), std::string());
      // One ring step with 4-byte messages: each rank learns its left neighbour's rank.
      c.beginOp(OpKind::kInternal, Millis(5000));
      int mine = c.rank(), got = -1;
      int right = (c.rank() + 1) % size, left = (c.rank() + size - 1) % size;
      if (size > 1) {
        c.sendRecv(right, &mine, sizeof(mine), left, &got, sizeof(got));
        EXPECT_EQ(got, left);
      }
      // Every pair is connected: rank r sends its rank to every higher rank, in order.
      for (int peer = 0; peer < size; ++peer) {
        if (peer == c.rank()) continue;
        c.beginOp(OpKind::kPointToPoint, Millis(5000));
        int theirs = -1;
        c.sendRecv(peer, &mine, sizeof(mine), peer, &theirs, sizeof(theirs));
        EXPECT_EQ(theirs, peer);
      }
    });
  }
}

NODECCL_TEST(comm_listen_hosts) {
  // A wildcard listens everywhere and publishes the store connection's address; an IPv6
  // loopback works when this machine has one.
  for (std::string host : {"0.0.0.0", "::1"}) {
    if (host == "::1") {
      try {
        TcpStoreServer probe("::1", 0);
      } catch (const Error&) {
        continue;  // no IPv6 here
      }
    }
    CommOptions base;
    base.listenHost = host;
    runWorld(3, [&](Communicator& c) {
      c.beginOp(OpKind::kBarrier, Millis(5000));
      int n = c.size();
      c.sendRecv((c.rank() + 1) % n, nullptr, 0, (c.rank() + n - 1) % n, nullptr, 0);
    }, base);
  }
}

NODECCL_TEST(comm_stray_connection_during_init) {
  // Something connects to rank 0's published port and sends junk before rank 1 arrives:
  // rank 0 drops it and the rendezvous still completes.
  std::vector<CommOptions> all = {options(0, 2, "stray", Millis(5000)),
                                  options(1, 2, "stray", Millis(5000)), CommOptions()};
  runRanks(all, [&](size_t i, std::shared_ptr<Store> store) {
    if (i == 2) {
      std::string host;
      int port = 0;
      std::string addr = store->get("stray/addr/0", Millis(3000));
      EXPECT_TRUE(net::splitHostPort(addr, &host, &port));
      net::Fd fd = net::connectTcp(host, port, net::deadlineAfter(Millis(2000)), "stray", "");
      std::string junk(64, 'j');
      int err = 0;
      net::sendAll(fd.get(), junk.data(), junk.size(), net::deadlineAfter(Millis(1000)), -1,
                   &err);
      store->set("stray/sent", "1");
      return;
    }
    if (i == 1) store->get("stray/sent", Millis(3000));
    auto c = Communicator::create(store, all[i]);
    c->beginOp(OpKind::kBarrier, Millis(5000));
    c->sendRecv(1 - c->rank(), nullptr, 0, 1 - c->rank(), nullptr, 0);
  });
}

NODECCL_TEST(comm_sendrecv_large_ring) {
  // 64 MiB per message, far beyond the socket buffers: only progressing the send and the
  // receive together lets every rank of the ring finish.
  const size_t bytes = size_t(64) << 20;
  runWorld(3, [&](Communicator& c) {
    int n = c.size(), right = (c.rank() + 1) % n, left = (c.rank() + n - 1) % n;
    std::vector<uint32_t> out(bytes / 4), in(bytes / 4, 0);
    for (size_t i = 0; i < out.size(); ++i) out[i] = uint32_t(i * 2654435761u) ^ c.rank();
    c.beginOp(OpKind::kAllReduce, Millis(20000));
    c.sendRecv(right, out.data(), bytes, left, in.data(), bytes);
    size_t bad = 0;
    for (size_t i = 0; i < in.size(); ++i) bad += in[i] != (uint32_t(i * 2654435761u) ^ left);
    EXPECT_EQ(bad, size_t(0));
  });
}

NODECCL_TEST(comm_sendrecv_zero_bytes_and_one_way) {
  runWorld(3, [&](Communicator& c) {
    int n = c.size(), right = (c.rank() + 1) % n, left = (c.rank() + n - 1) % n;
    // 0-byte messages still carry a header, so they are exchanged and checked.
    c.beginOp(OpKind::kBarrier, Millis(5000));
    c.sendRecv(right, nullptr, 0, left, nullptr, 0);
    // One direction at a time: send first (small, fits the socket buffer), then receive.
    c.beginOp(OpKind::kPointToPoint, Millis(5000));
    double v = 1.5 * c.rank(), got = -1;
    c.send(right, &v, sizeof(v));
    c.recv(left, &got, sizeof(got));
    EXPECT_EQ(got, 1.5 * left);
    // Nothing either way is a no-op.
    c.sendRecv(-1, nullptr, 0, -1, nullptr, 0);
  });
}

NODECCL_TEST(comm_scratch_and_bad_peers) {
  runWorld(2, [&](Communicator& c) {
    auto* p = static_cast<unsigned char*>(c.scratch(100));
    std::memset(p, 7, 100);
    auto* q = static_cast<unsigned char*>(c.scratch(1 << 20, 1));
    EXPECT_TRUE(q != nullptr && q != p);
    EXPECT_TRUE(c.scratch(50) == p);  // smaller request: same buffer
    // A bad peer is the caller's mistake: it does not fail the communicator.
    c.beginOp(OpKind::kPointToPoint, Millis(1000));
    EXPECT_THROWS_CODE(c.send(c.rank(), p, 1), ErrorCode::kInvalidArgument, "cannot send to rank");
    EXPECT_THROWS_CODE(c.recv(7, p, 1), ErrorCode::kInvalidArgument, "peers are 0..1");
    EXPECT_EQ(c.firstError(), std::string());
  });
}

// ---- invalid use ------------------------------------------------------------------------

NODECCL_TEST(comm_invalid_options_and_destroyed) {
  CommOptions o;
  o.rank = 2;
  o.size = 2;
  EXPECT_THROWS_CODE(Communicator::create(nullptr, o), ErrorCode::kInvalidArgument,
                     "rank 2 is out of range for world size 2");
  o.rank = 0;
  o.transport = "carrier-pigeon";
  EXPECT_THROWS_CODE(Communicator::create(nullptr, o), ErrorCode::kInvalidArgument,
                     "unknown transport 'carrier-pigeon'");

  runWorld(2, [&](Communicator& c) {
    c.destroy();
    c.destroy();  // idempotent
    EXPECT_THROWS_CODE(c.beginOp(OpKind::kAllReduce, Millis(0)), ErrorCode::kDestroyed,
                       "create a new one with init()");
    int x = 0;
    EXPECT_THROWS_CODE(c.send(1 - c.rank(), &x, sizeof(x)), ErrorCode::kDestroyed, "destroyed");
  });
}

// ---- mismatches -------------------------------------------------------------------------

// Params of a float32 sum all-reduce of `count` elements (what coll/ passes to beginOp).
static OpParams sumOf(uint64_t count, DataType dtype = DataType::kFloat32, int root = -1) {
  OpParams p;
  p.dtype = int(dtype);
  p.op = root < 0 ? int(ReduceOp::kSum) : -1;
  p.root = root;
  p.count = count;
  return p;
}

NODECCL_TEST(comm_mismatch_count) {
  runEach(2, [&](Communicator& c) {
    std::vector<float> buf(8192, 1.0f);
    const uint64_t count = c.rank() == 0 ? 4096 : 8192;
    c.beginOp(OpKind::kAllReduce, Millis(10000), sumOf(count));
    if (c.rank() == 0) {
      c.send(1, buf.data(), 4096 * 4);
      // Rank 1's mismatch reaches rank 0 through the store, before or during its next op.
      double ms = expectFailure(
          [&] {
            c.beginOp(OpKind::kAllReduce, Millis(10000), sumOf(4096));
            c.recv(1, buf.data(), 4096 * 4);
          },
          ErrorCode::kMismatch, ErrorCode::kAborted, "rank 0 sent float32 sum of 4096", "rank 0");
      EXPECT_TRUE(ms < 5000);
    } else {
      EXPECT_THROWS_CODE(c.recv(0, buf.data(), 8192 * 4), ErrorCode::kMismatch,
                         "rank 1: allReduce #1: rank 0 sent float32 sum of 4096 elements, this "
                         "rank expects float32 sum of 8192 elements; all ranks must pass the "
                         "same count, dtype, op and root");
      // Nothing of the mismatched message reached the buffer.
      EXPECT_EQ(buf[0], 1.0f);
      // The communicator is failed from then on, with that first error.
      EXPECT_THROWS_CODE(c.beginOp(OpKind::kAllReduce, Millis(0)), ErrorCode::kMismatch,
                         "expects float32 sum of 8192");
    }
  });
}

NODECCL_TEST(comm_mismatch_dtype_op_root) {
  struct Case {
    OpKind kind;
    OpParams a, b;
    const char* text;
  };
  OpParams maxOp = sumOf(16);
  maxOp.op = int(ReduceOp::kMax);
  const Case cases[] = {
      {OpKind::kAllReduce, sumOf(16), sumOf(16, DataType::kInt32),
       "rank 0 sent float32 sum of 16 elements, this rank expects int32 sum of 16 elements"},
      {OpKind::kAllReduce, sumOf(16), maxOp,
       "rank 0 sent float32 sum of 16 elements, this rank expects float32 max of 16 elements"},
      {OpKind::kBroadcast, sumOf(16, DataType::kFloat32, 0), sumOf(16, DataType::kFloat32, 1),
       "broadcast #1: rank 0 sent 16 float32, root 0, this rank expects 16 float32, root 1"},
  };
  for (const Case& k : cases) {
    runEach(2, [&](Communicator& c) {
      char buf[64] = {0};
      c.beginOp(k.kind, Millis(5000), c.rank() == 0 ? k.a : k.b);
      if (c.rank() == 0) {
        c.send(1, buf, sizeof(buf));
        return;
      }
      EXPECT_THROWS_CODE(c.recv(0, buf, sizeof(buf)), ErrorCode::kMismatch, k.text);
    });
  }
}

NODECCL_TEST(comm_mismatch_op_kind) {
  runEach(2, [&](Communicator& c) {
    char buf[64] = {0};
    if (c.rank() == 0) {
      c.beginOp(OpKind::kBroadcast, Millis(5000), sumOf(64, DataType::kUint8, 0));
      c.send(1, buf, sizeof(buf));
    } else {
      c.beginOp(OpKind::kAllReduce, Millis(5000), sumOf(64, DataType::kUint8));
      EXPECT_THROWS_CODE(c.recv(0, buf, sizeof(buf)), ErrorCode::kMismatch,
                         "rank 1: collective #1: rank 0 called broadcast (64 uint8, root 0), "
                         "this rank called allReduce (uint8 sum of 64 elements); all ranks must "
                         "call the same collectives in the same order");
    }
  });
}

NODECCL_TEST(comm_mismatch_reaches_every_rank) {
  // Rank 1 calls a broadcast where ranks 0, 2 and 3 call an all-reduce (two ring steps, as a
  // real ring would). Ranks 1 and 2 detect it on receipt; the others, blocked on a rank that
  // stopped, fail through the store with the detecting rank's message and code. In a ring of 4,
  // rank 0 may legitimately finish its part first (rank 3 sends both of its messages before it
  // blocks): it must then get the same error from its next operation.
  for (int size : {3, 4}) {
    runEach(size, [&](Communicator& c) {
      int n = c.size(), right = (c.rank() + 1) % n, left = (c.rank() + n - 1) % n;
      float v[8] = {0}, got[8];
      OpKind kind = c.rank() == 1 ? OpKind::kBroadcast : OpKind::kAllReduce;
      OpParams p = c.rank() == 1 ? sumOf(8, DataType::kFloat32, 0) : sumOf(8);
      std::string where = "rank " + std::to_string(c.rank());
      auto t0 = Clock::now();
      bool completed = true;
      try {
        c.beginOp(kind, Millis(20000), p);
        for (int step = 0; step < 2; ++step) {
          c.sendRecv(right, v, sizeof(v), left, got, sizeof(got));
        }
      } catch (const Error& e) {
        completed = false;
        std::string what = e.what();
        if (e.code() != ErrorCode::kMismatch ||
            what.find(": collective #1: rank ") == std::string::npos) {
          nodeccl_test::fail(where + ": wrong error: " + errorCodeName(e.code()) + " " + what);
        }
      }
      if (completed) {
        EXPECT_TRUE(size == 4 && c.rank() == 0);
        // Wait on the failed ranks: the store's notice must arrive and carry the mismatch.
        expectFailure([&] { c.beginOp(OpKind::kBarrier, Millis(20000));
                            c.sendRecv(1, nullptr, 0, 3, nullptr, 0); },
                      ErrorCode::kMismatch, ErrorCode::kMismatch, ": collective #1: rank ",
                      where.c_str());
      }
      EXPECT_TRUE(msSince(t0) < 5000);
    });
  }
}

NODECCL_TEST(comm_mismatch_skipped_collective) {
  // Rank 0 skips a barrier: rank 1's second collective meets rank 0's third.
  runEach(2, [&](Communicator& c) {
    int peer = 1 - c.rank();
    c.beginOp(OpKind::kBarrier, Millis(5000));
    c.sendRecv(peer, nullptr, 0, peer, nullptr, 0);
    if (c.rank() == 0) c.beginOp(OpKind::kBarrier, Millis(5000));
    c.beginOp(OpKind::kBarrier, Millis(5000));
    EXPECT_THROWS_CODE(c.sendRecv(peer, nullptr, 0, peer, nullptr, 0), ErrorCode::kMismatch,
                       "the ranks are out of step");
  });
}

// ---- failures and how fast the group learns of them ----------------------------------------

NODECCL_TEST(comm_peer_destroyed_mid_operation) {
  // Rank 3 leaves while ranks 0..2 run a ring that includes it. Rank 0 sees the closed
  // connection; ranks 1 and 2, blocked on other ranks, learn it through the store. All must
  // fail within ~1-2 s, long before the 20 s operation timeout.
  runEach(4, [&](Communicator& c) {
    if (c.rank() == 3) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      c.destroy();
      return;
    }
    int n = c.size(), right = (c.rank() + 1) % n, left = (c.rank() + n - 1) % n;
    double ms = expectFailure(
        [&] {
          for (int i = 0; i < 1000; ++i) {
            int v = i, got = 0;
            c.beginOp(OpKind::kAllReduce, Millis(20000));
            c.sendRecv(right, &v, sizeof(v), left, &got, sizeof(got));
          }
        },
        ErrorCode::kPeerLost, ErrorCode::kPeerLost, "rank 3 probably exited or crashed",
        ("rank " + std::to_string(c.rank())).c_str());
    EXPECT_TRUE(ms < 2000);
  });
}

NODECCL_TEST(comm_timeout_when_peer_never_sends) {
  std::atomic<bool> done{false};
  runEach(2, [&](Communicator& c) {
    if (c.rank() == 1) {
      // Stay alive (a closed socket would be reported as a lost peer, not a timeout).
      while (!done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      // Rank 0's timeout was published; this rank is failed with its text.
      for (int i = 0; i < 200 && c.firstError().empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_TRUE(c.firstError().find("timed out after 300 ms") != std::string::npos);
      return;
    }
    char buf[16];
    c.beginOp(OpKind::kAllReduce, Millis(300));
    auto t0 = Clock::now();
    EXPECT_THROWS_CODE(c.recv(1, buf, sizeof(buf)), ErrorCode::kTimeout,
                       "rank 0: allReduce #1 timed out after 300 ms waiting for rank 1 (receive: 0 "
                       "of ");
    double ms = msSince(t0);
    EXPECT_TRUE(ms >= 290 && ms < 1500);
    done = true;
  });
}

// In a group of four, rank 2 stays in an earlier operation while the others start the next:
// whichever rank times out first, the census after it makes every rank's error say where each
// rank was, so the one that is out of step is named even if it was nobody's ring neighbour.
NODECCL_TEST(comm_timeout_census_names_where_each_rank_is) {
  std::atomic<int> failedRanks{0};
  runEach(4, [&](Communicator& c) {
    float x[8] = {};
    allReduce(c, x, 8, DataType::kFloat32, ReduceOp::kSum);
    if (c.rank() == 2) {
      // Alive but not calling: wait until the other three have failed, then check its error.
      for (int i = 0; i < 1000 && failedRanks.load() < 3; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      for (int i = 0; i < 300 && c.firstError().empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_TRUE(c.firstError().find("census after the timeout") != std::string::npos);
      return;
    }
    try {
      allReduce(c, x, 8, DataType::kFloat32, ReduceOp::kSum, Millis(400));
      nodeccl_test::fail(strcat("rank ", c.rank(), ": the all-reduce should have timed out"));
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_EQ(int(e.code()), int(ErrorCode::kTimeout));
      EXPECT_TRUE(m.find("census after the timeout: every rank answered") != std::string::npos);
      EXPECT_TRUE(m.find("rank 2 in allReduce #1") != std::string::npos);
      EXPECT_TRUE(m.find("ranks 0, 1, 3 in allReduce #2") != std::string::npos);
      if (m.find("rank 2 in allReduce #1") == std::string::npos) nodeccl_test::fail(m);
    }
    failedRanks++;
  });
}

// Ranks that pass different roots to a reduce wait for each other until the timeout; the census
// then shows every rank's root, so the error says why.
NODECCL_TEST(comm_timeout_census_shows_roots) {
  runEach(3, [&](Communicator& c) {
    float x[4] = {1, 2, 3, 4};
    const int root = c.rank() == 2 ? 2 : 0;
    try {
      reduce(c, x, 4, DataType::kFloat32, ReduceOp::kSum, root, Millis(400));
      if (c.rank() == 0) nodeccl_test::fail("rank 0: a reduce with mixed roots completed");
    } catch (const Error& e) {
      const std::string m = e.what();
      if (m.find("reduce #1 (root 2)") == std::string::npos ||
          m.find("reduce #1 (root 0)") == std::string::npos) {
        nodeccl_test::fail(strcat("rank ", c.rank(), ": the error does not show both roots: ", m));
      }
    }
  });
}

NODECCL_TEST(comm_abort_from_another_thread) {
  runWorld(2, [&](Communicator& c) {
    std::thread aborter;
    if (c.rank() == 0) {
      aborter = std::thread([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        c.abort("stop now");
      });
    }
    // Both ranks wait for a message that never comes; rank 0 is woken by its own abort,
    // rank 1 by the notice rank 0 published.
    char buf[8];
    c.beginOp(OpKind::kBroadcast, Millis(20000));
    double ms = expectFailure([&] { c.recv(1 - c.rank(), buf, sizeof(buf)); },
                              ErrorCode::kAborted, ErrorCode::kAborted,
                              "rank 0: communicator aborted: stop now", "abort");
    EXPECT_TRUE(ms < 1500);
    if (aborter.joinable()) aborter.join();
    EXPECT_THROWS_CODE(c.beginOp(OpKind::kBroadcast, Millis(0)), ErrorCode::kAborted, "stop now");
  });
}

NODECCL_TEST(comm_store_lost_aborts_ranks) {
  // The store lives in rank 0's process; when it goes, blocked ranks fail after a short grace.
  auto server = std::make_unique<TcpStoreServer>("127.0.0.1", 0);
  int port = server->port();
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      auto store = std::make_shared<TcpStoreClient>("127.0.0.1", port, Millis(2000));
      auto c = Communicator::create(store, options(r, 2, "storelost", Millis(5000)));
      char buf[8];
      c->beginOp(OpKind::kAllReduce, Millis(20000));
      double ms = expectFailure([&] { c->recv(1 - r, buf, sizeof(buf)); }, ErrorCode::kAborted,
                                ErrorCode::kAborted, "lost connection to 127.0.0.1:", "rank");
      EXPECT_TRUE(ms < 3000);
      c->destroy();
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  server->stop();
  for (auto& t : threads) t.join();
}

// ---- init failures ----------------------------------------------------------------------

NODECCL_TEST(comm_world_size_disagreement) {
  // Rank 0 says 2, ranks 1 and 2 say 3: every rank fails fast, naming the sizes.
  std::vector<CommOptions> all = {options(0, 2, "sizes", Millis(3000)),
                                  options(1, 3, "sizes", Millis(3000)),
                                  options(2, 3, "sizes", Millis(3000))};
  runRanks(all, [&](size_t i, std::shared_ptr<Store> store) {
    double ms = expectFailure([&] { Communicator::create(store, all[i]); },
                              ErrorCode::kInvalidArgument, ErrorCode::kAborted,
                              "world size mismatch", "size");
    EXPECT_TRUE(ms < 2000);
  });
}

NODECCL_TEST(comm_missing_rank_times_out) {
  std::vector<CommOptions> all = {options(0, 3, "missing", Millis(500)),
                                  options(1, 3, "missing", Millis(500))};
  runRanks(all, [&](size_t i, std::shared_ptr<Store> store) {
    auto t0 = Clock::now();
    EXPECT_THROWS_CODE(Communicator::create(store, all[i]), ErrorCode::kTimeout,
                       "1 of 3 ranks never arrived (rank 2)");
    double ms = msSince(t0);
    EXPECT_TRUE(ms >= 450 && ms < 2000);
  });
}

NODECCL_TEST(comm_duplicate_rank) {
  // Two processes both claim rank 0 of 2: the second is told so; the first learns it from the
  // store (or times out, rank 1 never being there).
  std::vector<CommOptions> all = {options(0, 2, "dup", Millis(1000)),
                                  options(0, 2, "dup", Millis(1000))};
  std::atomic<int> toldDuplicate{0};
  runRanks(all, [&](size_t i, std::shared_ptr<Store> store) {
    try {
      Communicator::create(store, all[i]);
      nodeccl_test::fail("a duplicate rank 0 was accepted");
    } catch (const Error& e) {
      if (std::string(e.what()).find("already joined prefix 'dup' as rank 0") !=
          std::string::npos) {
        ++toldDuplicate;
      } else {
        EXPECT_TRUE(e.code() == ErrorCode::kTimeout || e.code() == ErrorCode::kAborted);
      }
    }
  });
  EXPECT_TRUE(toldDuplicate.load() >= 1);
}

NODECCL_TEST(comm_job_token) {
  // Ranks with the same token connect and talk; a process with another token (or none) is
  // refused by the rank it connects to, with a clear error on its side.
  for (const char* second : {"tok-A", "tok-B", ""}) {
    std::vector<CommOptions> all = {options(0, 2, "token", Millis(1500)),
                                    options(1, 2, "token", Millis(1500))};
    all[0].token = "tok-A";
    all[1].token = second;
    const bool same = std::string(second) == "tok-A";
    runRanks(all, [&](size_t i, std::shared_ptr<Store> store) {
      if (same) {
        auto c = Communicator::create(store, all[i]);
        int mine = c->rank(), theirs = -1;
        c->beginOp(OpKind::kInternal, Millis(5000));
        c->sendRecv(1 - mine, &mine, sizeof(mine), 1 - mine, &theirs, sizeof(theirs));
        EXPECT_EQ(theirs, 1 - mine);
        return;
      }
      try {
        Communicator::create(store, all[i]);
        nodeccl_test::fail("a rank with a different job token was let in");
      } catch (const Error& e) {
        std::string what = e.what();
        if (i == 1) {
          EXPECT_TRUE(what.find(*second ? "refused this process's job token"
                                        : "requires a job token and this process has none") !=
                      std::string::npos);
        }
      }
    });
  }
}

// A rank whose token the store refuses never arrives; the ranks waiting for it are told, at
// once in a warning and then in their init timeout's error, that the store refused a client.
NODECCL_TEST(comm_store_refusal_named_in_init_timeout) {
  TcpStoreServer server("127.0.0.1", 0, "tok-A");
  CommOptions o;
  o.rank = 0;
  o.size = 2;
  o.token = "tok-A";
  o.prefix = "refused";
  o.initTimeout = Millis(1500);
  std::thread stranger([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_THROWS_CODE(TcpStoreClient("127.0.0.1", server.port(), Millis(2000), Millis(2000),
                                      "tok-B"),
                       ErrorCode::kIo, "refused");
  });
  auto store = std::make_shared<TcpStoreClient>("127.0.0.1", server.port(), Millis(2000),
                                                Millis(30000), "tok-A");
  EXPECT_THROWS_CODE(Communicator::create(store, o), ErrorCode::kTimeout,
                     "note: the store refused 1 connection for a wrong job token (the last from "
                     "127.0.0.1:");
  stranger.join();
}

// ---- executor ---------------------------------------------------------------------------

NODECCL_TEST(executor_order_and_errors) {
  std::vector<int> ran;
  std::atomic<int> errors{0}, dones{0};
  {
    Executor ex;
    for (int i = 0; i < 50; ++i) {
      ex.submit(
          [&ran, i] {
            if (i == 7) throw Error(ErrorCode::kTimeout, "task 7 failed");
            ran.push_back(i);
          },
          [&](std::exception_ptr e) {
            ++dones;
            if (e) ++errors;
          });
    }
    ex.shutdown();  // runs everything queued first
    EXPECT_THROWS_CODE(ex.submit([] {}, nullptr), ErrorCode::kDestroyed, "shut down");
  }
  EXPECT_EQ(dones.load(), 50);
  EXPECT_EQ(errors.load(), 1);
  EXPECT_EQ(ran.size(), size_t(49));
  bool ordered = true;
  for (size_t i = 1; i < ran.size(); ++i) ordered &= ran[i] > ran[i - 1];
  EXPECT_TRUE(ordered);
}

NODECCL_TEST(comm_socket_ifname) {
  // NODECCL_SOCKET_IFNAME=lo: every rank listens on (and publishes) lo's 127.0.0.1 only.
  EXPECT_EQ(net::interfaceAddress("lo", "test"), std::string("127.0.0.1"));
  EXPECT_EQ(net::interfaceOf("127.0.0.1"), std::string("lo"));
  EXPECT_THROWS_CODE(net::interfaceAddress("nodeccl-nope0", "rank 0"),
                     ErrorCode::kInvalidArgument, "'nodeccl-nope0': there is no interface");
  setenv("NODECCL_SOCKET_IFNAME", "lo", 1);
  std::vector<CommOptions> all = {options(0, 2, "ifname", Millis(5000)),
                                  options(1, 2, "ifname", Millis(5000))};
  runRanks(all, [&](size_t i, std::shared_ptr<Store> store) {
    auto c = Communicator::create(store, all[i]);
    std::string addr = store->get("ifname/addr/" + std::to_string(i), Millis(1000));
    EXPECT_TRUE(addr.rfind("127.0.0.1:", 0) == 0);
    c->beginOp(OpKind::kBarrier, Millis(5000));
    c->sendRecv(1 - c->rank(), nullptr, 0, 1 - c->rank(), nullptr, 0);
  });
  // An unknown name fails init with the error naming it.
  setenv("NODECCL_SOCKET_IFNAME", "nodeccl-nope0", 1);
  std::vector<CommOptions> bad = {options(0, 2, "ifbad", Millis(2000)),
                                  options(1, 2, "ifbad", Millis(2000))};
  runRanks(bad, [&](size_t i, std::shared_ptr<Store> store) {
    EXPECT_THROWS_CODE(Communicator::create(store, bad[i]), ErrorCode::kInvalidArgument,
                       "NODECCL_SOCKET_IFNAME='nodeccl-nope0'");
  });
  unsetenv("NODECCL_SOCKET_IFNAME");
}
