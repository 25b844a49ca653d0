// SPDX-License-Identifier: Apache-2.0
// Tests the shared-memory transport and the algorithm choice: all-reduce and reduce-scatter
// swept over transports {tcp, shm} x algorithms {ring, direct} (chunk boundaries included), the
// non-blocking small-message path, a dead peer on shm, failed calls leaving buffers unchanged,
// and no segment left in /dev/shm.
#include <dirent.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "coll/collectives.h"
#include "coll/direct.h"
#include "common/error.h"
#include "transport/shm/shm_transport.h"
#include "test/harness.h"
#include "test/world.h"

using namespace nodeccl;
using namespace nodeccl_test;

namespace {

using Clock = std::chrono::steady_clock;

CommOptions opts(const char* transport, const char* algo = "auto") {
  CommOptions o;
  o.transport = transport;
  o.algo = algo;
  o.timeout = Millis(20000);
  o.initTimeout = Millis(20000);
  return o;
}

// Rank r's value at i: small integers, so float32 sums are exact in any order.
float value(int r, size_t i) {
  return static_cast<float>((r * 7 + static_cast<int>(i % 13)) % 11 - 5);
}

float sumAt(int n, size_t i) {
  float s = 0;
  for (int r = 0; r < n; ++r) s += value(r, i);
  return s;
}

size_t shmEntries() {
  std::string prefix = "nodeccl-" + std::to_string(getpid()) + "-";
  size_t n = 0;
  if (DIR* d = opendir("/dev/shm")) {
    while (dirent* e = readdir(d)) n += std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0;
    closedir(d);
  }
  return n;
}

}  // namespace

NODECCL_TEST(shm_auto_chooses_shm_on_one_host_and_tcp_when_forced) {
  runWorld(3, [](Communicator& c) { EXPECT_EQ(std::string(c.transportName()), "shm"); },
           opts("auto"));
  runWorld(3, [](Communicator& c) { EXPECT_EQ(std::string(c.transportName()), "tcp"); },
           opts("tcp"));
  EXPECT_EQ(shmEntries(), size_t(0));  // unlinked once mapped, and unmapped at destroy
}

NODECCL_TEST(shm_allreduce_transports_x_algorithms) {
  // 65536 floats = one 256 KiB chunk: 131073 splits into segments across chunk boundaries.
  const size_t counts[] = {0, 1, 13, 1000, 131073};
  for (const char* t : {"tcp", "shm"}) {
    for (const char* a : {"ring", "direct", "auto"}) {
      for (int n : {1, 2, 3, 4}) {
        runWorld(n, [&](Communicator& c) {
          for (size_t count : counts) {
            std::vector<float> x(count);
            for (size_t i = 0; i < count; ++i) x[i] = value(c.rank(), i);
            allReduce(c, x.data(), count, DataType::kFloat32, ReduceOp::kSum);
            for (size_t i = 0; i < count; ++i) {
              if (x[i] != sumAt(n, i)) {
                fail(strcat(t, "/", a, " n=", n, " count=", count, " [", i, "] got ", x[i],
                            " want ", sumAt(n, i)));
                break;
              }
            }
          }
        }, opts(t, a));
      }
    }
  }
}

NODECCL_TEST(shm_reduce_scatter_and_allgather_across_chunks) {
  for (const char* t : {"tcp", "shm"}) {
    runWorld(3, [&](Communicator& c) {
      const size_t count = 70001;  // > one chunk per block
      std::vector<float> in(count * 3), out(count), all(count * 3);
      for (size_t i = 0; i < in.size(); ++i) in[i] = value(c.rank(), i);
      reduceScatter(c, in.data(), out.data(), count, DataType::kFloat32, ReduceOp::kSum);
      for (size_t i = 0; i < count; ++i) {
        EXPECT_EQ(out[i], sumAt(3, c.rank() * count + i));
        if (out[i] != sumAt(3, c.rank() * count + i)) break;
      }
      allGather(c, out.data(), all.data(), count, DataType::kFloat32);
      for (size_t i = 0; i < all.size(); ++i) {
        EXPECT_EQ(all[i], sumAt(3, i));
        if (all[i] != sumAt(3, i)) break;
      }
    }, opts(t));
  }
}

NODECCL_TEST(shm_broadcast_chain_and_tree_across_chunks) {
  // 300001 floats: 5 chunks of 256 KiB, the last one partial.
  for (const char* t : {"tcp", "shm"}) {
    for (const char* a : {"chain", "tree"}) {
      runWorld(3, [&](Communicator& c) {
        for (int root = 0; root < 3; ++root) {
          std::vector<float> x(300001);
          for (size_t i = 0; i < x.size(); ++i) x[i] = value(c.rank(), i);
          broadcast(c, x.data(), x.size(), DataType::kFloat32, root);
          for (size_t i = 0; i < x.size(); ++i) {
            if (x[i] != value(root, i)) {
              fail(strcat(t, "/", a, " root ", root, " [", i, "] got ", x[i]));
              break;
            }
          }
        }
      }, opts(t, a));
    }
  }
}

NODECCL_TEST(shm_direct_completes_without_blocking) {
  // Rank 0 drives the non-blocking path (as the binding does on the JS thread) while rank 1
  // runs the blocking all-reduce; both must agree, and rank 0 must never block.
  runWorld(2, [](Communicator& c) {
    for (int iter = 0; iter < 50; ++iter) {
      float x[4] = {float(c.rank() + iter), 1, 2, 3};
      if (c.rank() == 0) {
        auto op = startAllReduceDirect(c, x, 4, DataType::kFloat32, ReduceOp::kSum, Millis(0));
        auto give = Clock::now() + std::chrono::seconds(10);
        while (!op->tryFinish() && Clock::now() < give) std::this_thread::yield();
        op->finish();  // no-op when done
      } else {
        allReduce(c, x, 4, DataType::kFloat32, ReduceOp::kSum);
      }
      EXPECT_EQ(x[0], float(1 + 2 * iter));
      EXPECT_EQ(x[3], 6.0f);
    }
  }, opts("shm", "direct"));
}

NODECCL_TEST(shm_dead_peer_fails_promptly_naming_it_and_leaves_data_unchanged) {
  for (const char* a : {"ring", "direct"}) {
    runWorld(3, [&](Communicator& c) {
      if (c.rank() == 2) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        c.destroy();
        return;
      }
      std::vector<float> x(100000, float(c.rank() + 1));
      auto t0 = Clock::now();
      try {
        allReduce(c, x.data(), x.size(), DataType::kFloat32, ReduceOp::kSum);
        fail("expected the all-reduce to fail");
      } catch (const Error& e) {
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        EXPECT_TRUE(e.code() == ErrorCode::kPeerLost || e.code() == ErrorCode::kAborted);
        EXPECT_TRUE(std::string(e.what()).find("rank 2") != std::string::npos);
        EXPECT_TRUE(ms < 3000);
      }
      for (float v : x) {
        EXPECT_EQ(v, float(c.rank() + 1));
        if (v != float(c.rank() + 1)) break;
      }
    }, opts("shm", a));
  }
  EXPECT_EQ(shmEntries(), size_t(0));
}

// The shared heap's allocator on a file of its own: page rounding, first fit, merging of
// freed neighbours, ranges checked whole, and a full heap refused with a message that says
// how large the largest free range is.
NODECCL_TEST(shm_shared_heap_allocates_merges_and_refuses) {
  int fd = ::memfd_create("nodeccl-test-heap", MFD_CLOEXEC);
  EXPECT_TRUE(fd >= 0);
  const size_t page = SharedHeap::kPage;
  EXPECT_EQ(::ftruncate(fd, off_t(8 * page)), 0);
  SharedHeap heap(fd, 0, 8 * page);  // the first page is the control page: 7 to hand out
  std::string why;
  auto* a = static_cast<unsigned char*>(heap.allocate(1, &why));
  auto* b = static_cast<unsigned char*>(heap.allocate(2 * page, &why));
  auto* c = static_cast<unsigned char*>(heap.allocate(0, &why));
  EXPECT_TRUE(a != nullptr && b != nullptr && c != nullptr);
  EXPECT_EQ(b - a, long(page));
  EXPECT_EQ(c - b, long(2 * page));
  EXPECT_EQ(heap.offsetOf(b + 8, 2 * page - 8), int64_t(2 * page + 8));
  EXPECT_EQ(heap.offsetOf(b + 8, 2 * page), int64_t(-1));  // runs past its allocation
  EXPECT_EQ(heap.offsetOf(heap.base(), 8), int64_t(-1));   // the control page
  std::vector<char> plain(16);
  EXPECT_EQ(heap.offsetOf(plain.data(), 16), int64_t(-1));
  b[0] = 7;
  heap.release(a);
  heap.release(b);  // merges with a's pages: 3 pages free in front of c
  auto* d = static_cast<unsigned char*>(heap.allocate(3 * page, &why));
  EXPECT_TRUE(d == a);
  EXPECT_EQ(int(d[page]), 0);  // punched out: zero again
  EXPECT_TRUE(heap.allocate(4 * page, &why) == nullptr);
  EXPECT_TRUE(why.find("largest free: " + std::to_string(3 * page)) != std::string::npos);
  heap.release(c);
  heap.release(d);
  EXPECT_TRUE(heap.allocate(7 * page, &why) != nullptr);  // everything merged back
}

// A rank that gives up on an all-reduce of shared arrays (its timeout ran out while its peer
// was late) says its array may hold partial results, and marks its heap; the late peer then
// finds the mark before writing into that array and fails too, instead of writing into an
// array its owner has taken back.
NODECCL_TEST(shm_shared_allreduce_gives_up_and_peers_stop_writing) {
  runWorld(2, [&](Communicator& c) {
    std::shared_ptr<SharedHeap> heap = c.shm()->heap();
    std::string why;
    const size_t count = 1 << 16;
    auto* x = static_cast<float*>(heap->allocate(count * 4, &why));
    for (size_t i = 0; i < count; ++i) x[i] = 1.0f;
    try {
      if (c.rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(400));
      allReduce(c, x, count, DataType::kFloat32, ReduceOp::kSum,
                c.rank() == 1 ? Millis(100) : Millis(0));
      fail(strcat("rank ", c.rank(), ": expected the all-reduce to fail"));
    } catch (const Error& e) {
      const std::string m = e.what();
      if (c.rank() == 1) {
        EXPECT_EQ(int(e.code()), int(ErrorCode::kTimeout));
        EXPECT_TRUE(m.find("may hold partial results") != std::string::npos);
      } else {
        EXPECT_TRUE(m.find("rank 1") != std::string::npos);
      }
    }
    if (c.rank() == 1) {  // rank 0 found the mark before its first write: nothing changed
      for (size_t i = 0; i < count; ++i) {
        if (x[i] != 1.0f) {
          fail(strcat("rank 1's array changed at ", i, ": ", x[i]));
          break;
        }
      }
    }
    heap->release(x);
  }, opts("shm", "staged"));
}

NODECCL_TEST(shm_forced_algorithm_names_are_checked) {
  CommOptions o = opts("auto", "bogus");
  EXPECT_THROWS_CODE(Communicator::create(nullptr, o), ErrorCode::kInvalidArgument,
                     "unknown algorithm 'bogus'");
}
