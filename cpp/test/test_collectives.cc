// SPDX-License-Identifier: Apache-2.0
// Tests the collectives (coll/collectives.h) with ranks as threads over real TCP loopback
// connections, swept over world sizes, counts (0, 1, primes, counts below and not divisible by
// the world size), dtypes and ops, against a reference computed here; each collective under
// NODECCL_ALGO=auto and with each of its algorithms forced, and the direct (small-message)
// algorithms also over TCP, over the hybrid transport, and driven without blocking.
#include <atomic>
#include <initializer_list>
#include <memory>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "coll/collectives.h"
#include "coll/direct.h"
#include "transport/shm/shm_transport.h"
#include "common/error.h"
#include "common/half.h"
#include "test/harness.h"
#include "test/typed.h"
#include "test/world.h"

using namespace nodeccl;
using namespace nodeccl_test;

namespace {

const int kWorldSizes[] = {1, 2, 3, 4, 5, 8};
// 0, 1, below most world sizes, primes (never divisible by n > 1), and a larger one.
const size_t kCounts[] = {0, 1, 7, 13, 1000};

// A hang fails the test after this long instead of stalling the whole binary.
CommOptions testOptions(Millis timeout = Millis(20000)) {
  CommOptions o;
  o.timeout = timeout;
  o.initTimeout = Millis(20000);
  return o;
}

// ---- inputs and reference ----------------------------------------------------------------

// The value rank r contributes at element i. Floats get small integers, so that every sum
// (|s| <= 8 ranks * 8 = 64) and product (|p| <= 2^8 = 256) is exact in float32 and in both
// half types whatever the order of accumulation: the reference needs no tolerance, and any
// ranks that disagree are wrong. Integer sums span the whole range, so they wrap.
int64_t inputValue(int r, size_t i, DataType t, ReduceOp op) {
  uint64_t h = static_cast<uint64_t>(r) * 0x9E3779B1u + i * 0x85EBCA77u + 12345;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  if (op == ReduceOp::kProd) {
    static const int kFactors[] = {1, 2, -1, -2, 1};
    int f = kFactors[h % 5];
    return t == DataType::kUint8 && f < 0 ? -f : f;
  }
  switch (t) {
    case DataType::kInt32: return static_cast<int32_t>(static_cast<uint32_t>(h));
    case DataType::kInt8: return static_cast<int64_t>(h % 256) - 128;
    case DataType::kUint8: return static_cast<int64_t>(h % 256);
    default: return static_cast<int64_t>(h % 17) - 8;
  }
}

Bytes makeInput(int r, size_t count, DataType t, ReduceOp op) {
  Bytes b(count * dtypeSize(t));
  for (size_t i = 0; i < count; ++i) {
    if (isIntType(t)) storeI(b, i, t, inputValue(r, i, t, op));
    else storeF(b, i, t, static_cast<double>(inputValue(r, i, t, op)));
  }
  return b;
}

int64_t foldInt(int64_t a, int64_t b, ReduceOp op) {
  switch (op) {
    case ReduceOp::kProd: return a * b;  // factors are +-1, +-2: no int64 overflow
    case ReduceOp::kMin: return a < b ? a : b;
    case ReduceOp::kMax: return a > b ? a : b;
    default: return a + b;  // sum, avg: at most 8 int32 values, no int64 overflow
  }
}

// Element i of op over ranks 0..n-1. Integers: wrapped, avg truncates the wrapped sum.
// Floats: the exact result; avg divides it in the accumulation type (float32 for half types,
// which then round once; float64 for float64), as the collectives are specified to.
void storeExpected(Bytes& out, size_t i, int n, DataType t, ReduceOp op) {
  int64_t acc = inputValue(0, i, t, op);
  for (int r = 1; r < n; ++r) acc = foldInt(acc, inputValue(r, i, t, op), op);
  if (isIntType(t)) {
    int64_t wrapped = wrapTo(acc, t);
    storeI(out, i, t, op == ReduceOp::kAvg ? wrapped / n : wrapped);
  } else if (op != ReduceOp::kAvg) {
    storeF(out, i, t, static_cast<double>(acc));
  } else if (t == DataType::kFloat64) {
    storeF(out, i, t, static_cast<double>(acc) / n);
  } else {
    storeF(out, i, t, static_cast<float>(acc) / static_cast<float>(n));
  }
}

Bytes expectedReduction(int n, size_t count, DataType t, ReduceOp op) {
  Bytes out(count * dtypeSize(t));
  for (size_t i = 0; i < count; ++i) storeExpected(out, i, n, t, op);
  return out;
}

// Byte-exact comparison (so ranks are also bitwise identical); reports the first difference.
bool expectBytes(const Bytes& got, const Bytes& want, DataType t, const std::string& what) {
  if (got == want) return true;
  if (got.size() != want.size()) {
    fail(strcat(what, ": got ", got.size(), " bytes, expected ", want.size()));
    return false;
  }
  const size_t elem = dtypeSize(t);
  for (size_t i = 0; i * elem < got.size(); ++i) {
    if (std::memcmp(got.data() + i * elem, want.data() + i * elem, elem) != 0) {
      fail(strcat(what, ": element ", i, " is ", loadAny(got, i, t), ", expected ",
                  loadAny(want, i, t)));
      break;
    }
  }
  return false;
}

std::string describe(const char* coll, const Communicator& comm, size_t count, DataType t,
                     const char* extra = "") {
  return strcat(coll, " rank ", comm.rank(), "/", comm.size(), " count ", count, " ",
                dtypeName(t), " ", extra);
}

}  // namespace

// ---- allReduce ---------------------------------------------------------------------------

NODECCL_TEST(coll_allreduce_every_size_count_dtype_op) {
  for (int n : kWorldSizes) {
    runWorld(n, [&](Communicator& comm) {
      for (DataType t : kAllTypes) {
        for (ReduceOp op : kAllOps) {
          for (size_t count : kCounts) {
            Bytes data = makeInput(comm.rank(), count, t, op);
            allReduce(comm, data.data(), count, t, op);
            if (!expectBytes(data, expectedReduction(n, count, t, op), t,
                             describe("allReduce", comm, count, t, reduceOpName(op)))) {
              return;
            }
          }
        }
      }
    }, testOptions());
  }
}

NODECCL_TEST(coll_allreduce_staged_and_ring_forced) {
  for (const char* algo : {"staged", "ring"}) {
    CommOptions o = testOptions();
    o.algo = algo;
    for (int n : kWorldSizes) {
      runWorld(n, [&](Communicator& comm) {
        for (DataType t : kAllTypes) {
          for (ReduceOp op : kAllOps) {
            for (size_t count : {size_t(0), size_t(1), size_t(7), size_t(13), size_t(4099)}) {
              Bytes data = makeInput(comm.rank(), count, t, op);
              allReduce(comm, data.data(), count, t, op);
              if (!expectBytes(data, expectedReduction(n, count, t, op), t,
                               describe("allReduce", comm, count, t,
                                        strcat(algo, " ", reduceOpName(op)).c_str()))) {
                return;
              }
            }
          }
        }
      }, o);
    }
  }
}

NODECCL_TEST(coll_allreduce_large_float32_sum) {
  // 2^20 elements (4 MiB): 2^20 mod 3 = 1, so with 3 ranks the segments are uneven.
  const size_t count = size_t(1) << 20;
  for (int n : {2, 3, 4}) {
    runWorld(n, [&](Communicator& comm) {
      Bytes data = makeInput(comm.rank(), count, DataType::kFloat32, ReduceOp::kSum);
      allReduce(comm, data.data(), count, DataType::kFloat32, ReduceOp::kSum);
      expectBytes(data, expectedReduction(n, count, DataType::kFloat32, ReduceOp::kSum),
                  DataType::kFloat32, describe("allReduce", comm, count, DataType::kFloat32));
    }, testOptions());
  }
}

NODECCL_TEST(coll_allreduce_half_accumulates_in_float32_and_rounds_once) {
  // Rank 0 contributes 2048 (float16) or 256 (bfloat16), every other rank 1, so the exact sum
  // is 2048 + (n - 1). Near 2048 float16's spacing is 2, near 256 bfloat16's is 2: rounding
  // at every step would lose the ones whenever 2048 is added first (2048 + 1 -> 2048, a tie
  // to even). Rounding once: n = 4 -> 2051 -> 2052 (tie to even); n = 5 -> 2052;
  // n = 8 -> 2055 -> 2056 (tie to even). avg divides the float32 sum by n, then rounds:
  // n = 3 -> 2050 / 3 = 683.33 -> 683.5 (float16 spacing 0.5 in [512, 1024)).
  for (int n : {2, 3, 4, 5, 8}) {
    runWorld(n, [&](Communicator& comm) {
      for (DataType t : {DataType::kFloat16, DataType::kBFloat16}) {
        const float big = t == DataType::kFloat16 ? 2048.0f : 256.0f;
        for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg}) {
          const size_t count = 11;
          Bytes data(count * 2), want(count * 2);
          float exact = big + static_cast<float>(n - 1);
          if (op == ReduceOp::kAvg) exact /= static_cast<float>(n);
          for (size_t i = 0; i < count; ++i) {
            storeF(data, i, t, comm.rank() == 0 ? big : 1.0f);
            storeF(want, i, t, exact);  // storeF rounds float32 -> half once
          }
          allReduce(comm, data.data(), count, t, op);
          expectBytes(data, want, t, describe("allReduce", comm, count, t, reduceOpName(op)));
        }
      }
    }, testOptions());
  }
}

NODECCL_TEST(coll_allreduce_propagates_nan) {
  // The last rank puts a NaN at element 3; every op (sum, prod, min, max, avg) must give NaN
  // there on every rank, and leave the other elements alone.
  for (int n : {1, 3, 4}) {
    runWorld(n, [&](Communicator& comm) {
      for (DataType t : {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16,
                         DataType::kBFloat16}) {
        for (ReduceOp op : kAllOps) {
          Bytes data = makeInput(comm.rank(), 9, t, op);
          Bytes want = expectedReduction(n, 9, t, op);
          if (comm.rank() == n - 1) storeF(data, 3, t, NAN);
          allReduce(comm, data.data(), 9, t, op);
          EXPECT_TRUE(std::isnan(loadF(data, 3, t)));
          storeF(data, 3, t, 0.0);
          storeF(want, 3, t, 0.0);
          expectBytes(data, want, t, describe("allReduce NaN", comm, 9, t, reduceOpName(op)));
        }
      }
    }, testOptions());
  }
}

// ---- broadcast and reduce ----------------------------------------------------------------

namespace {

// Every world size, root, a few dtypes and every count, under `o` (its algo, its transport).
void broadcastSweep(const CommOptions& o, std::initializer_list<int> sizes) {
  const DataType types[] = {DataType::kFloat32, DataType::kFloat64, DataType::kInt8,
                            DataType::kBFloat16};
  for (int n : sizes) {
    runWorld(n, [&](Communicator& comm) {
      for (int root = 0; root < n; ++root) {
        for (DataType t : types) {
          for (size_t count : kCounts) {
            // Non-roots start with other values, so a rank that receives nothing fails.
            Bytes data = makeInput(comm.rank() == root ? root : 100 + comm.rank(), count, t,
                                   ReduceOp::kSum);
            broadcast(comm, data.data(), count, t, root);
            if (!expectBytes(data, makeInput(root, count, t, ReduceOp::kSum), t,
                             describe("broadcast", comm, count, t,
                                      strcat(o.algo, " root ", root).c_str()))) {
              return;
            }
          }
        }
      }
    }, o);
  }
}

}  // namespace

NODECCL_TEST(coll_broadcast_every_root) {
  broadcastSweep(testOptions(), {1, 2, 3, 4, 5, 8});
}

NODECCL_TEST(coll_broadcast_every_root_each_algorithm_forced) {
  for (const char* algo : {"direct", "tree", "chain", "staged"}) {
    CommOptions o = testOptions();
    o.algo = algo;
    broadcastSweep(o, {1, 2, 3, 4, 5, 8});
  }
}

NODECCL_TEST(coll_reduce_every_root_leaves_non_roots_unchanged) {
  for (int n : kWorldSizes) {
    runWorld(n, [&](Communicator& comm) {
      for (int root = 0; root < n; ++root) {
        for (DataType t : kAllTypes) {
          for (ReduceOp op : kAllOps) {
            for (size_t count : {size_t(0), size_t(13)}) {
              const Bytes input = makeInput(comm.rank(), count, t, op);
              Bytes data = input;
              reduce(comm, data.data(), count, t, op, root);
              const Bytes want =
                  comm.rank() == root ? expectedReduction(n, count, t, op) : input;
              if (!expectBytes(data, want, t,
                               describe("reduce", comm, count, t,
                                        strcat(reduceOpName(op), " root ", root).c_str()))) {
                return;
              }
            }
          }
        }
      }
    }, testOptions());
  }
}

NODECCL_TEST(coll_reduce_larger_counts) {
  for (int n : {2, 3, 5}) {
    runWorld(n, [&](Communicator& comm) {
      for (DataType t : {DataType::kFloat32, DataType::kFloat16, DataType::kInt32}) {
        for (size_t count : {size_t(1), size_t(7), size_t(1000), size_t(65537)}) {
          const int root = n - 1;
          const Bytes input = makeInput(comm.rank(), count, t, ReduceOp::kAvg);
          Bytes data = input;
          reduce(comm, data.data(), count, t, ReduceOp::kAvg, root);
          const Bytes want =
              comm.rank() == root ? expectedReduction(n, count, t, ReduceOp::kAvg) : input;
          expectBytes(data, want, t, describe("reduce avg", comm, count, t));
        }
      }
    }, testOptions());
  }
}

// ---- allGather and reduceScatter ---------------------------------------------------------

namespace {

void allGatherSweep(const CommOptions& o, std::initializer_list<int> sizes) {
  const DataType types[] = {DataType::kFloat32, DataType::kUint8, DataType::kFloat16,
                            DataType::kFloat64};
  for (int n : sizes) {
    runWorld(n, [&](Communicator& comm) {
      for (DataType t : types) {
        for (size_t count : kCounts) {
          const size_t elem = dtypeSize(t);
          const std::string what = describe("allGather", comm, count, t, o.algo.c_str());
          Bytes want;
          for (int r = 0; r < n; ++r) {
            Bytes block = makeInput(r, count, t, ReduceOp::kSum);
            want.insert(want.end(), block.begin(), block.end());
          }
          // Separate input and output; the output starts as garbage.
          Bytes in = makeInput(comm.rank(), count, t, ReduceOp::kSum);
          const Bytes input = in;
          Bytes out(n * count * elem, 0xAB);
          allGather(comm, in.data(), out.data(), count, t);
          if (!expectBytes(out, want, t, what)) return;
          if (!expectBytes(in, input, t, what + " (input changed)")) return;
          // In place: the input is this rank's block of the output.
          Bytes inPlace(n * count * elem, 0xCD);
          unsigned char* own = inPlace.data() + comm.rank() * count * elem;
          if (count > 0) std::memcpy(own, in.data(), in.size());
          allGather(comm, own, inPlace.data(), count, t);
          if (!expectBytes(inPlace, want, t, what + " in place")) return;
        }
      }
    }, o);
  }
}

void reduceScatterSweep(const CommOptions& o, std::initializer_list<int> sizes) {
  for (int n : sizes) {
    runWorld(n, [&](Communicator& comm) {
      for (DataType t : kAllTypes) {
        for (ReduceOp op : kAllOps) {
          for (size_t count : {size_t(0), size_t(1), size_t(7), size_t(13), size_t(100)}) {
            const size_t elem = dtypeSize(t);
            const Bytes input = makeInput(comm.rank(), n * count, t, op);
            const Bytes all = expectedReduction(n, n * count, t, op);
            Bytes in = input, out(count * elem, 0xEE);
            reduceScatter(comm, in.data(), out.data(), count, t, op);
            const auto begin = all.begin() + comm.rank() * count * elem;
            const Bytes want(begin, begin + count * elem);
            std::string what =
                describe("reduceScatter", comm, count, t,
                         strcat(o.algo, " ", reduceOpName(op)).c_str());
            if (!expectBytes(out, want, t, what)) return;
            if (!expectBytes(in, input, t, what + " (input changed)")) return;
          }
        }
      }
    }, o);
  }
}

}  // namespace

NODECCL_TEST(coll_allgather_every_size_and_count) {
  allGatherSweep(testOptions(), {1, 2, 3, 4, 5, 8});
}

NODECCL_TEST(coll_allgather_direct_and_ring_forced) {
  for (const char* algo : {"direct", "ring", "staged"}) {
    CommOptions o = testOptions();
    o.algo = algo;
    allGatherSweep(o, {1, 2, 3, 4, 5, 8});
  }
}

NODECCL_TEST(coll_reduce_scatter_every_size_count_dtype_op) {
  reduceScatterSweep(testOptions(), {1, 2, 3, 4, 5, 8});
}

NODECCL_TEST(coll_reduce_scatter_direct_and_ring_forced) {
  for (const char* algo : {"direct", "ring", "staged"}) {
    CommOptions o = testOptions();
    o.algo = algo;
    reduceScatterSweep(o, {1, 2, 3, 4, 5, 8});
  }
}

// ---- barrier and point to point ----------------------------------------------------------

namespace {

void barrierSweep(const CommOptions& o, std::initializer_list<int> sizes) {
  for (int n : sizes) {
    constexpr int kRounds = 12;
    std::atomic<int> arrived[kRounds] = {};
    runWorld(n, [&](Communicator& comm) {
      for (int k = 0; k < kRounds; ++k) {
        // Stagger arrivals so that some rank is always late.
        if ((comm.rank() + k) % 3 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        arrived[k].fetch_add(1);
        barrier(comm);
        EXPECT_EQ(arrived[k].load(), n);
      }
    }, o);
  }
}

}  // namespace

NODECCL_TEST(coll_barrier_holds_every_rank_until_all_arrive) {
  barrierSweep(testOptions(), {1, 2, 3, 4, 5, 8});
}

NODECCL_TEST(coll_barrier_direct_and_dissemination_forced) {
  for (const char* algo : {"direct", "ring"}) {  // "ring" names no barrier: dissemination
    CommOptions o = testOptions();
    o.algo = algo;
    barrierSweep(o, {1, 2, 3, 5, 8});
  }
}

NODECCL_TEST(coll_send_recv_around_a_ring) {
  for (int n : {2, 3, 4, 5}) {
    runWorld(n, [&](Communicator& comm) {
      const int r = comm.rank(), next = (r + 1) % n, prev = (r + n - 1) % n;
      for (size_t count : {size_t(0), size_t(1), size_t(1000), size_t(100000)}) {
        const DataType t = DataType::kFloat32;
        Bytes out = makeInput(r, count, t, ReduceOp::kSum), in(count * 4, 0);
        // Even ranks send first and odd ranks receive first, so no cycle of blocked senders
        // forms even when a message does not fit in the socket buffers.
        if (r % 2 == 0) {
          send(comm, out.data(), count, t, next);
          recv(comm, in.data(), count, t, prev);
        } else {
          recv(comm, in.data(), count, t, prev);
          send(comm, out.data(), count, t, next);
        }
        expectBytes(in, makeInput(prev, count, t, ReduceOp::kSum), t,
                    describe("recv", comm, count, t));
      }
    }, testOptions());
  }
}

// ---- errors ------------------------------------------------------------------------------

NODECCL_TEST(coll_rejects_bad_arguments_before_communicating) {
  const ErrorCode code = ErrorCode::kInvalidArgument;
  runWorld(4, [&](Communicator& comm) {
    const std::string me = strcat("rank ", comm.rank(), ": ");
    float buf[4] = {1, 2, 3, 4};
    const size_t huge = std::numeric_limits<size_t>::max() / 2;
    EXPECT_THROWS_CODE(broadcast(comm, buf, 4, DataType::kFloat32, 5), code,
                       me + "broadcast root 5 is out of range for a world of 4 ranks; pass a "
                            "root in 0..3");
    EXPECT_THROWS_CODE(reduce(comm, buf, 4, DataType::kFloat32, ReduceOp::kSum, -1), code,
                       me + "reduce root -1 is out of range");
    EXPECT_THROWS_CODE(allReduce(comm, nullptr, 4, DataType::kFloat32, ReduceOp::kSum), code,
                       me + "allReduce data is null but count is 4");
    EXPECT_THROWS_CODE(allReduce(comm, buf, huge, DataType::kFloat32, ReduceOp::kSum), code,
                       "overflows");
    EXPECT_THROWS_CODE(allGather(comm, buf, buf, huge / 4, DataType::kFloat32), code,
                       "x 4 ranks overflows");
    EXPECT_THROWS_CODE(reduceScatter(comm, buf, nullptr, 1, DataType::kFloat32,
                                     ReduceOp::kSum), code, "output is null");
    EXPECT_THROWS_CODE(allReduce(comm, buf, 4, static_cast<DataType>(9), ReduceOp::kSum), code,
                       "dtype 9 is not a known dtype");
    EXPECT_THROWS_CODE(allReduce(comm, buf, 4, DataType::kFloat32, static_cast<ReduceOp>(5)),
                       code, "op 5 is not a known reduce op");
    EXPECT_THROWS_CODE(send(comm, buf, 4, DataType::kFloat32, comm.rank()), code,
                       "is this rank itself");
    EXPECT_THROWS_CODE(recv(comm, buf, 4, DataType::kFloat32, 4), code,
                       "recv peer 4 is out of range for a world of 4 ranks");
    // Nothing was sent, so the communicator still works and all ranks are in step.
    float one[3] = {1, 1, 1};
    allReduce(comm, one, 3, DataType::kFloat32, ReduceOp::kSum);
    EXPECT_EQ(one[2], 4.0f);
  }, testOptions());
  runWorld(1, [&](Communicator& comm) {
    float x = 0;
    EXPECT_THROWS_CODE(send(comm, &x, 1, DataType::kFloat32, 0), code, "a world of 1 rank");
  }, testOptions());
}

NODECCL_TEST(coll_mismatched_counts_fail_on_every_rank) {
  // Rank 0 reduces 8 elements, rank 1 16: their first ring messages are 16 and 32 bytes, and
  // each receiver checks the header's byte count against what it expects. Whichever rank
  // notices first fails the group, so the other may fail with kAborted carrying that first
  // rank's message instead of its own kMismatch: either way every rank fails, saying why.
  runWorld(2, [&](Communicator& comm) {
    std::vector<float> data(comm.rank() == 0 ? 8 : 16, 1.0f);
    try {
      allReduce(comm, data.data(), data.size(), DataType::kFloat32, ReduceOp::kSum);
      fail(strcat("rank ", comm.rank(), ": allReduce with mismatched counts did not throw"));
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_TRUE(e.code() == ErrorCode::kMismatch || e.code() == ErrorCode::kAborted);
      if (what.find("same count") == std::string::npos) {
        fail(strcat("rank ", comm.rank(), ": unexpected message: ", what));
      }
    }
  }, testOptions(Millis(5000)));
}

// A failed call leaves the caller's buffers as they were, whatever the algorithm: rank 2 of 3
// passes a different count, so ranks 0 and 1 fail after receiving each other's (correct)
// blocks, which must not reach their outputs.
NODECCL_TEST(coll_failed_small_calls_leave_outputs_unchanged) {
  for (const char* algo : {"direct", "ring", "tree", "staged"}) {
    CommOptions o = testOptions(Millis(3000));
    o.algo = algo;
    runWorld(3, [&](Communicator& comm) {
      const size_t count = comm.rank() == 2 ? 9 : 8;
      std::vector<float> in(count, float(comm.rank() + 1)), out(count * 3, -7.0f);
      try {
        allGather(comm, in.data(), out.data(), count, DataType::kFloat32);
        fail(strcat("rank ", comm.rank(), ": mismatched allGather did not throw (", algo, ")"));
      } catch (const Error&) {
        for (float v : out) {
          if (v != -7.0f) {
            fail(strcat("rank ", comm.rank(), ": a failed allGather (", algo, ") wrote ", v,
                        " into its output"));
            break;
          }
        }
      }
    }, o);
    runWorld(3, [&](Communicator& comm) {
      const size_t count = comm.rank() == 2 ? 9 : 8;
      std::vector<float> data(count, comm.rank() == 0 ? 5.0f : -7.0f);
      try {
        broadcast(comm, data.data(), count, DataType::kFloat32, 0);
      } catch (const Error&) {
      }
      // Rank 1 may complete (its count matches the root's); rank 2 must fail, unchanged.
      if (comm.rank() == 2) {
        for (float v : data) {
          if (v != -7.0f) {
            fail(strcat("rank 2: a failed broadcast (", algo, ") wrote ", v, " into its buffer"));
            break;
          }
        }
      }
    }, o);
  }
}

// ---- allToAll, gather, scatter, batched send/recv ------------------------------------------

namespace {

// The value rank `from` sends rank `to` at element i of that block: distinct per pair.
float pairValue(int from, int to, size_t i) {
  return static_cast<float>(from * 1000 + to * 100 + static_cast<int>(i % 97));
}

}  // namespace

NODECCL_TEST(coll_alltoall_even_and_uneven) {
  for (int n : kWorldSizes) {
    runWorld(n, [&](Communicator& comm) {
      const int r = comm.rank();
      // Even (every block 5 elements), then uneven: rank a sends (a + 2b) % 4 elements to b,
      // zero-length blocks included.
      for (int uneven = 0; uneven < 2; ++uneven) {
        auto blockLen = [&](int a, int b) -> size_t {
          return uneven ? static_cast<size_t>((a + 2 * b) % 4) : 5;
        };
        std::vector<size_t> sc(n), rc(n);
        std::vector<float> in, want;
        for (int p = 0; p < n; ++p) {
          sc[p] = blockLen(r, p);
          rc[p] = blockLen(p, r);
          for (size_t i = 0; i < sc[p]; ++i) in.push_back(pairValue(r, p, i));
          for (size_t i = 0; i < rc[p]; ++i) want.push_back(pairValue(p, r, i));
        }
        std::vector<float> out(want.size(), -1.0f);
        allToAll(comm, in.data(), sc, out.data(), rc, DataType::kFloat32);
        if (out != want) {
          fail(strcat("allToAll rank ", r, "/", n, uneven ? " uneven" : " even",
                      ": wrong result"));
          return;
        }
      }
    }, testOptions());
  }
}

NODECCL_TEST(coll_alltoall_rejects_wrong_counts) {
  runWorld(2, [&](Communicator& comm) {
    float x[4] = {0, 0, 0, 0};
    bool threw = false;
    try {
      allToAll(comm, x, {1, 1, 1}, x, {1, 1}, DataType::kFloat32);
    } catch (const Error& e) {
      threw = e.code() == ErrorCode::kInvalidArgument &&
              std::string(e.what()).find("sendCounts has 3 entries") != std::string::npos;
    }
    if (!threw) fail("allToAll with 3 sendCounts on 2 ranks did not throw kInvalidArgument");
  }, testOptions());
}

NODECCL_TEST(coll_gather_and_scatter_every_root) {
  for (int n : kWorldSizes) {
    runWorld(n, [&](Communicator& comm) {
      const int r = comm.rank();
      for (size_t count : kCounts) {
        for (int root = 0; root < n; ++root) {
          std::vector<float> in(count), all(count * n), out(count * n, -1.0f);
          for (size_t i = 0; i < count; ++i) in[i] = pairValue(r, root, i);
          for (int p = 0; p < n; ++p) {
            for (size_t i = 0; i < count; ++i) all[p * count + i] = pairValue(p, root, i);
          }
          gather(comm, in.data(), out.data(), count, DataType::kFloat32, root);
          if (r == root && out != all) {
            fail(strcat("gather rank ", r, "/", n, " root ", root, " count ", count));
            return;
          }
          if (r != root && count > 0 && out[0] != -1.0f) {
            fail(strcat("gather wrote a non-root's output, rank ", r));
            return;
          }
          // Scatter the gathered blocks back: each rank gets its own input again.
          std::vector<float> back(count, -2.0f);
          scatter(comm, r == root ? all.data() : nullptr, back.data(), count,
                  DataType::kFloat32, root);
          if (back != in) {
            fail(strcat("scatter rank ", r, "/", n, " root ", root, " count ", count));
            return;
          }
        }
      }
    }, testOptions());
  }
}

NODECCL_TEST(coll_batch_sendrecv_any_order_no_deadlock) {
  for (int n : kWorldSizes) {
    runWorld(n, [&](Communicator& comm) {
      const int r = comm.rank();
      // Every rank sends two messages to every rank (itself included), of 3 and 20000 floats
      // (above any transport buffering), listing the sends in descending and the receives in
      // ascending peer order: a naive blocking schedule would deadlock.
      const size_t lens[2] = {3, 20000};
      std::vector<std::vector<float>> sbufs, rbufs;
      std::vector<P2PSend> sends;
      std::vector<P2PRecv> recvs;
      for (int p = n - 1; p >= 0; --p) {
        for (size_t k = 0; k < 2; ++k) {
          sbufs.emplace_back(lens[k]);
          for (size_t i = 0; i < lens[k]; ++i) sbufs.back()[i] = pairValue(r, p, i + k);
        }
      }
      for (int p = 0; p < n; ++p) {
        for (size_t k = 0; k < 2; ++k) rbufs.emplace_back(lens[k], -1.0f);
      }
      for (size_t i = 0; i < sbufs.size(); ++i) {
        sends.push_back({n - 1 - static_cast<int>(i / 2), sbufs[i].data(),
                         sbufs[i].size() * sizeof(float)});
      }
      for (size_t i = 0; i < rbufs.size(); ++i) {
        recvs.push_back({static_cast<int>(i / 2), rbufs[i].data(),
                         rbufs[i].size() * sizeof(float)});
      }
      batchSendRecv(comm, sends, recvs);
      for (size_t i = 0; i < rbufs.size(); ++i) {
        const int p = static_cast<int>(i / 2);
        const size_t k = i % 2;
        for (size_t j = 0; j < lens[k]; ++j) {
          if (rbufs[i][j] != pairValue(p, r, j + k)) {
            fail(strcat("batchSendRecv rank ", r, "/", n, " from ", p, " message ", k,
                        " element ", j, " is ", rbufs[i][j]));
            return;
          }
        }
      }
    }, testOptions());
  }
}

// ---- direct (small-message) algorithms: over TCP, and driven without blocking -------------

NODECCL_TEST(coll_direct_over_tcp) {
  // The blocking schedule alone (no shared memory to post every send at once).
  CommOptions o = testOptions();
  o.algo = "direct";
  o.transport = "tcp";
  broadcastSweep(o, {2, 3, 5});
  allGatherSweep(o, {2, 3, 5});
  reduceScatterSweep(o, {2, 5});
  barrierSweep(o, {3});
}

NODECCL_TEST(coll_direct_reduce_scatter_half_rounds_once) {
  // As coll_allreduce_half_accumulates_in_float32_and_rounds_once, block by block: rank 0
  // contributes 2048 (float16) or 256 (bfloat16), every other rank 1, so each block's exact
  // sum is big + (n - 1), rounded once (n = 4: 2051 -> 2052, tie to even).
  for (int n : {3, 4, 5}) {
    CommOptions o = testOptions();
    o.algo = "direct";
    runWorld(n, [&](Communicator& comm) {
      for (DataType t : {DataType::kFloat16, DataType::kBFloat16}) {
        const float big = t == DataType::kFloat16 ? 2048.0f : 256.0f;
        for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg}) {
          const size_t count = 5;
          Bytes in(n * count * 2), out(count * 2), want(count * 2);
          float exact = big + static_cast<float>(n - 1);
          if (op == ReduceOp::kAvg) exact /= static_cast<float>(n);
          for (size_t i = 0; i < n * count; ++i) storeF(in, i, t, comm.rank() == 0 ? big : 1.0f);
          for (size_t i = 0; i < count; ++i) storeF(want, i, t, exact);
          reduceScatter(comm, in.data(), out.data(), count, t, op);
          expectBytes(out, want, t, describe("reduceScatter", comm, count, t, reduceOpName(op)));
        }
      }
    }, o);
  }
}

namespace {

// Runs `start()`'s operation as the binding's fast path does: tryFinish in a loop (yielding
// between tries), then finish if it did not complete within a few milliseconds.
void driveNonBlocking(const std::unique_ptr<DirectExchange>& op) {
  const auto give = std::chrono::steady_clock::now() + std::chrono::milliseconds(5);
  while (!op->tryFinish() && std::chrono::steady_clock::now() < give) std::this_thread::yield();
  op->finish();  // a no-op once done
}

}  // namespace

NODECCL_TEST(coll_direct_nonblocking_mixed_with_blocking) {
  // Even ranks drive every direct collective without blocking (the JS-thread fast path), odd
  // ranks call the blocking collectives (the worker thread): results must not depend on which.
  const DataType t = DataType::kFloat32;
  for (int n : {2, 3, 4}) {
    runWorld(n, [&](Communicator& comm) {
      const int r = comm.rank();
      const bool fast = r % 2 == 0;
      for (size_t count : {size_t(0), size_t(1), size_t(13)}) {
        const size_t bytes = count * 4;
        const std::string tag = strcat(fast ? "non-blocking" : "blocking", " n=", n);
        Bytes ar = makeInput(r, count, t, ReduceOp::kSum);
        if (fast) driveNonBlocking(startAllReduceDirect(comm, ar.data(), count, t,
                                                        ReduceOp::kSum, Millis(0)));
        else allReduce(comm, ar.data(), count, t, ReduceOp::kSum);
        expectBytes(ar, expectedReduction(n, count, t, ReduceOp::kSum), t,
                    describe("allReduce", comm, count, t, tag.c_str()));

        Bytes in = makeInput(r, count, t, ReduceOp::kSum), all(n * bytes, 0xAB), want;
        if (fast) driveNonBlocking(startAllGatherDirect(comm, in.data(), all.data(), count, t,
                                                        Millis(0)));
        else allGather(comm, in.data(), all.data(), count, t);
        for (int q = 0; q < n; ++q) {
          Bytes b = makeInput(q, count, t, ReduceOp::kSum);
          want.insert(want.end(), b.begin(), b.end());
        }
        expectBytes(all, want, t, describe("allGather", comm, count, t, tag.c_str()));

        Bytes rsIn = makeInput(r, n * count, t, ReduceOp::kMax), rsOut(bytes, 0xEE);
        if (fast) driveNonBlocking(startReduceScatterDirect(comm, rsIn.data(), rsOut.data(),
                                                            count, t, ReduceOp::kMax, Millis(0)));
        else reduceScatter(comm, rsIn.data(), rsOut.data(), count, t, ReduceOp::kMax);
        const Bytes full = expectedReduction(n, n * count, t, ReduceOp::kMax);
        expectBytes(rsOut, Bytes(full.begin() + r * bytes, full.begin() + (r + 1) * bytes), t,
                    describe("reduceScatter", comm, count, t, tag.c_str()));

        const int root = n - 1;
        Bytes bc = makeInput(r == root ? root : 50 + r, count, t, ReduceOp::kSum);
        if (fast) driveNonBlocking(startBroadcastDirect(comm, bc.data(), count, t, root,
                                                        Millis(0)));
        else broadcast(comm, bc.data(), count, t, root);
        expectBytes(bc, makeInput(root, count, t, ReduceOp::kSum), t,
                    describe("broadcast", comm, count, t, tag.c_str()));

        if (fast) driveNonBlocking(startBarrierDirect(comm, Millis(0)));
        else barrier(comm);
      }
    }, [] {
      CommOptions o = testOptions();
      o.algo = "direct";
      o.transport = "shm";
      return o;
    }());
  }
}

NODECCL_TEST(coll_direct_tryfinish_is_off_without_shared_memory) {
  // Over TCP the non-blocking halves do not exist: tryFinish reports "not now" and the
  // blocking finish completes the same operation.
  CommOptions o = testOptions();
  o.algo = "direct";
  o.transport = "tcp";
  runWorld(2, [&](Communicator& comm) {
    float x[3] = {1, 2, float(comm.rank())};
    auto op = startAllReduceDirect(comm, x, 3, DataType::kFloat32, ReduceOp::kSum, Millis(0));
    EXPECT_TRUE(!op->tryFinish());
    op->finish();
    EXPECT_EQ(x[0], 2.0f);
    EXPECT_EQ(x[2], 1.0f);
  }, o);
}

// ---- staged algorithms: back-to-back calls, and the fall back to the ring -----------------

// Staged calls alternate the halves of every window: a rank that races ahead into the next
// call (or the one after) must never overwrite what a slower peer still reads. Sizes, roots
// and collectives change every call, and one rank sleeps now and then.
NODECCL_TEST(coll_staged_back_to_back_mixed_calls) {
  CommOptions o = testOptions();
  o.algo = "staged";
  for (int n : {2, 3, 4}) {
    runWorld(n, [&](Communicator& comm) {
      const int r = comm.rank();
      for (int k = 0; k < 40; ++k) {
        if (r == k % n && k % 3 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        const size_t count = 1000 + size_t(k) * 977 % 20000;
        const std::string tag = strcat("call ", k, " count ", count);
        switch (k % 4) {
          case 0: {
            Bytes data = makeInput(r + k, count, DataType::kFloat32, ReduceOp::kSum);
            allReduce(comm, data.data(), count, DataType::kFloat32, ReduceOp::kSum);
            Bytes want(count * 4);
            for (size_t i = 0; i < count; ++i) {
              double v = 0;
              for (int q = 0; q < n; ++q) v += double(inputValue(q + k, i, DataType::kFloat32,
                                                                 ReduceOp::kSum));
              storeF(want, i, DataType::kFloat32, v);
            }
            if (!expectBytes(data, want, DataType::kFloat32, "allReduce " + tag)) return;
            break;
          }
          case 1: {
            const int root = k % n;
            Bytes data = makeInput(r == root ? k : 1000 + r, count, DataType::kInt32,
                                   ReduceOp::kSum);
            broadcast(comm, data.data(), count, DataType::kInt32, root);
            if (!expectBytes(data, makeInput(k, count, DataType::kInt32, ReduceOp::kSum),
                             DataType::kInt32, "broadcast " + tag)) {
              return;
            }
            break;
          }
          case 2: {
            Bytes in = makeInput(r * 7 + k, count, DataType::kUint8, ReduceOp::kSum);
            Bytes out(count * size_t(n), 0);
            allGather(comm, in.data(), out.data(), count, DataType::kUint8);
            Bytes want;
            for (int q = 0; q < n; ++q) {
              Bytes b = makeInput(q * 7 + k, count, DataType::kUint8, ReduceOp::kSum);
              want.insert(want.end(), b.begin(), b.end());
            }
            if (!expectBytes(out, want, DataType::kUint8, "allGather " + tag)) return;
            break;
          }
          default: {
            Bytes in = makeInput(r, count * size_t(n), DataType::kFloat64, ReduceOp::kMax);
            Bytes out(count * 8);
            reduceScatter(comm, in.data(), out.data(), count, DataType::kFloat64,
                          ReduceOp::kMax);
            Bytes all = expectedReduction(n, count * size_t(n), DataType::kFloat64,
                                          ReduceOp::kMax);
            Bytes want(all.begin() + long(r * count * 8), all.begin() + long((r + 1) * count * 8));
            if (!expectBytes(out, want, DataType::kFloat64, "reduceScatter " + tag)) return;
          }
        }
      }
    }, o);
  }
}

// With windows too small for a call (NODECCL_SHM_WINDOW_MB), every rank takes the ring in the
// same call and the results stay right; for a broadcast only the root's window is too small,
// and the others, whose windows would do, follow it.
NODECCL_TEST(coll_staged_falls_back_when_a_window_is_too_small) {
  ::setenv("NODECCL_SHM_WINDOW_MB", "4", 1);  // halves of 2 MiB
  CommOptions o = testOptions();
  o.algo = "staged";
  const size_t count = size_t(1) << 20;  // 4 MiB of float32: more than half a window
  runWorld(3, [&](Communicator& comm) {
    Bytes data = makeInput(comm.rank(), count, DataType::kFloat32, ReduceOp::kSum);
    allReduce(comm, data.data(), count, DataType::kFloat32, ReduceOp::kSum);
    expectBytes(data, expectedReduction(3, count, DataType::kFloat32, ReduceOp::kSum),
                DataType::kFloat32, "allReduce falling back");
    Bytes b = makeInput(comm.rank() == 1 ? 1 : 50, count, DataType::kFloat32, ReduceOp::kSum);
    broadcast(comm, b.data(), count, DataType::kFloat32, 1);
    expectBytes(b, makeInput(1, count, DataType::kFloat32, ReduceOp::kSum), DataType::kFloat32,
                "broadcast falling back");
    // A call that fits still takes the staged path afterwards.
    Bytes small = makeInput(comm.rank(), 4096, DataType::kFloat32, ReduceOp::kSum);
    allReduce(comm, small.data(), 4096, DataType::kFloat32, ReduceOp::kSum);
    expectBytes(small, expectedReduction(3, 4096, DataType::kFloat32, ReduceOp::kSum),
                DataType::kFloat32, "allReduce after a fall back");
  }, o);
  ::unsetenv("NODECCL_SHM_WINDOW_MB");
}

// In-place reduce-scatter, as NCCL allows it: each rank's output is its own block of its
// input (out = in + r * count), under every algorithm.
NODECCL_TEST(coll_reduce_scatter_in_place_every_algorithm) {
  for (const char* algo : {"auto", "ring", "direct", "staged"}) {
    CommOptions o = testOptions();
    o.algo = algo;
    for (int n : {2, 3, 4, 5}) {
      runWorld(n, [&](Communicator& comm) {
        const int r = comm.rank();
        for (DataType t : {DataType::kFloat32, DataType::kInt32, DataType::kFloat16}) {
          for (size_t count : {size_t(1), size_t(13), size_t(4099), size_t(20011)}) {
            const size_t elem = dtypeSize(t);
            Bytes in = makeInput(r, count * size_t(n), t, ReduceOp::kSum);
            unsigned char* out = in.data() + size_t(r) * count * elem;
            reduceScatter(comm, in.data(), out, count, t, ReduceOp::kSum);
            Bytes all = expectedReduction(n, count * size_t(n), t, ReduceOp::kSum);
            Bytes want(all.begin() + long(size_t(r) * count * elem),
                       all.begin() + long(size_t(r + 1) * count * elem));
            if (!expectBytes(Bytes(out, out + count * elem), want, t,
                             describe("reduceScatter in place", comm, count, t, algo))) {
              return;
            }
          }
        }
      }, o);
    }
  }
}

// ---- shared arrays (transport/shm/shared_heap.h): the staged all-reduce in place -----------

namespace {

// `bytes` of this rank's shared heap, handed back when it goes out of scope.
struct SharedBuf {
  std::shared_ptr<SharedHeap> heap;
  unsigned char* p = nullptr;
  SharedBuf(Communicator& comm, size_t bytes) : heap(comm.shm() ? comm.shm()->heap() : nullptr) {
    std::string why;
    if (heap) p = static_cast<unsigned char*>(heap->allocate(bytes, &why));
    if (p == nullptr) throw Error(ErrorCode::kIo, "no shared buffer: " + why);
  }
  ~SharedBuf() { heap->release(p); }
  SharedBuf(const SharedBuf&) = delete;
  SharedBuf& operator=(const SharedBuf&) = delete;
};

}  // namespace

// Every rank's buffer shared (each rank writes its segment into every buffer), or only the
// odd ranks' (the others stage, and the shared ones are read in place): every world size,
// dtype and op, and counts over several 16 Ki-element chunks, bitwise equal to the reference.
NODECCL_TEST(coll_allreduce_shared_arrays_every_size_dtype_op) {
  CommOptions o = testOptions();
  o.algo = "staged";
  for (const char* who : {"every rank", "odd ranks"}) {
    for (int n : kWorldSizes) {
      if (n == 1) continue;  // no shared memory transport for a single rank
      runWorld(n, [&](Communicator& comm) {
        const bool mine = who[0] == 'e' || comm.rank() % 2 == 1;
        for (DataType t : kAllTypes) {
          for (ReduceOp op : kAllOps) {
            for (size_t count : {size_t(0), size_t(1), size_t(13), size_t(4099),
                                 size_t(16384) * 3 + 5}) {
              Bytes in = makeInput(comm.rank(), count, t, op);
              const size_t bytes = in.size();
              SharedBuf buf(comm, bytes);
              Bytes plain = in;
              unsigned char* data = mine ? buf.p : plain.data();
              if (bytes > 0) std::memcpy(data, in.data(), bytes);
              allReduce(comm, data, count, t, op);
              Bytes got(data, data + bytes);
              if (!expectBytes(got, expectedReduction(n, count, t, op), t,
                               describe("allReduce", comm, count, t,
                                        strcat("shared on ", who, " ", reduceOpName(op))
                                            .c_str()))) {
                return;
              }
            }
          }
        }
      }, o);
    }
  }
}

// Broadcast, all-gather and reduce-scatter read shared inputs in place (every rank's, or the
// odd ranks' while the others stage): every root, dtype and world size, bitwise right.
NODECCL_TEST(coll_shared_inputs_broadcast_allgather_reduce_scatter) {
  CommOptions o = testOptions();
  o.algo = "staged";
  for (const char* who : {"every rank", "odd ranks"}) {
    for (int n : {2, 3, 4, 5, 8}) {
      runWorld(n, [&](Communicator& comm) {
        const int r = comm.rank();
        const bool mine = who[0] == 'e' || r % 2 == 1;
        // `in` in this rank's shared heap (or a plain copy), handed back with the buffer.
        auto place = [&](const Bytes& in, SharedBuf& buf, Bytes& plain) {
          plain = in;
          unsigned char* p = mine ? buf.p : plain.data();
          if (!in.empty()) std::memcpy(p, in.data(), in.size());
          return p;
        };
        for (DataType t : kAllTypes) {
          const size_t elem = dtypeSize(t);
          for (size_t count : {size_t(0), size_t(1), size_t(13), size_t(4099), size_t(20011)}) {
            const std::string tag = strcat(" shared on ", who);
            for (int root = 0; root < n; ++root) {
              Bytes in = makeInput(r == root ? 100 + root : r, count, t, ReduceOp::kSum), plain;
              SharedBuf buf(comm, in.size());
              unsigned char* data = place(in, buf, plain);
              broadcast(comm, data, count, t, root);
              if (!expectBytes(Bytes(data, data + in.size()),
                               makeInput(100 + root, count, t, ReduceOp::kSum), t,
                               describe("broadcast", comm, count, t, tag.c_str()))) {
                return;
              }
            }
            Bytes in = makeInput(r, count, t, ReduceOp::kSum), plain;
            SharedBuf buf(comm, in.size());
            Bytes out(count * elem * size_t(n));
            allGather(comm, place(in, buf, plain), out.data(), count, t);
            Bytes want;
            for (int q = 0; q < n; ++q) {
              Bytes b = makeInput(q, count, t, ReduceOp::kSum);
              want.insert(want.end(), b.begin(), b.end());
            }
            if (!expectBytes(out, want, t, describe("allGather", comm, count, t, tag.c_str()))) {
              return;
            }
            Bytes big = makeInput(r, count * size_t(n), t, ReduceOp::kSum), bigPlain;
            SharedBuf bigBuf(comm, big.size());
            Bytes block(count * elem);
            reduceScatter(comm, place(big, bigBuf, bigPlain), block.data(), count, t,
                          ReduceOp::kSum);
            Bytes all = expectedReduction(n, count * size_t(n), t, ReduceOp::kSum);
            Bytes wantBlock(all.begin() + long(size_t(r) * count * elem),
                            all.begin() + long(size_t(r + 1) * count * elem));
            if (!expectBytes(block, wantBlock, t,
                             describe("reduceScatter", comm, count, t, tag.c_str()))) {
              return;
            }
          }
        }
      }, o);
    }
  }
}

// The same arrays reused call after call, sizes changing, one rank sometimes late: a rank
// that runs ahead writes into its peers' arrays only once they have entered the same call.
NODECCL_TEST(coll_allreduce_shared_arrays_back_to_back) {
  for (int n : {2, 3, 4}) {
    runWorld(n, [&](Communicator& comm) {
      const int r = comm.rank();
      SharedBuf buf(comm, 40000 * 4);
      auto* x = reinterpret_cast<float*>(buf.p);
      for (int k = 0; k < 40; ++k) {
        if (r == k % n && k % 3 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        const size_t count = 1 + size_t(k) * 977 % 40000;
        for (size_t i = 0; i < count; ++i) x[i] = float(r + k) + float(i % 7);
        allReduce(comm, x, count, DataType::kFloat32, ReduceOp::kSum);
        for (size_t i = 0; i < count; ++i) {
          const float want = float(n * k + n * (n - 1) / 2) + float(n) * float(i % 7);
          if (x[i] != want) {
            fail(strcat("rank ", r, " call ", k, " element ", i, ": ", x[i], " != ", want));
            return;
          }
        }
      }
    }, testOptions());
  }
}

// ---- jobs over several hosts (hybrid transport, hierarchical all-reduce) ------------------

namespace {

// Host layouts: one letter per rank. Contiguous, interleaved (a host's ranks are not
// neighbours in the ring), uneven, one rank per host, and one host alone.
const char* const kLayouts[] = {"ab", "aab", "aabb", "abab", "abcab", "aaabbbcc", "aaaa"};

}  // namespace

NODECCL_TEST(coll_hosts_allreduce_every_layout_algo_dtype_op) {
  for (const char* layout : kLayouts) {
    for (const char* algo : {"auto", "hier", "ring", "direct"}) {
      CommOptions o = testOptions();
      o.algo = algo;
      const int n = static_cast<int>(std::strlen(layout));
      runWorldOnHosts(layout, [&](Communicator& comm) {
        for (DataType t : kAllTypes) {
          for (ReduceOp op : kAllOps) {
            for (size_t count : {size_t(0), size_t(1), size_t(13), size_t(1000)}) {
              Bytes data = makeInput(comm.rank(), count, t, op);
              allReduce(comm, data.data(), count, t, op);
              if (!expectBytes(data, expectedReduction(n, count, t, op), t,
                               describe("allReduce", comm, count, t,
                                        strcat(layout, " ", algo, " ", reduceOpName(op))
                                            .c_str()))) {
                return;
              }
            }
          }
        }
      }, o);
    }
  }
}

// Under auto, large all-reduces across hosts time both algorithms for a few calls, then every
// rank settles on the same one; every result along the way is exact.
NODECCL_TEST(coll_hosts_tune_ring_against_hier) {
  const size_t count = size_t(1) << 18;  // 1 MiB of float32: tuned
  std::vector<int> choices(4, -2);
  runWorldOnHosts("aabb", [&](Communicator& comm) {
    for (int call = 0; call < 6; ++call) {
      Bytes data = makeInput(comm.rank(), count, DataType::kFloat32, ReduceOp::kSum);
      allReduce(comm, data.data(), count, DataType::kFloat32, ReduceOp::kSum);
      if (!expectBytes(data, expectedReduction(4, count, DataType::kFloat32, ReduceOp::kSum),
                       DataType::kFloat32, describe("allReduce", comm, count,
                                                    DataType::kFloat32, "tuning"))) {
        return;
      }
    }
    choices[comm.rank()] = comm.acrossHostsTuning().choice;
  }, testOptions());
  EXPECT_TRUE(choices[0] == 0 || choices[0] == 1);
  for (int c : choices) EXPECT_EQ(c, choices[0]);
}

NODECCL_TEST(coll_hosts_pick_transport_and_algorithm) {
  runWorldOnHosts("aabb", [&](Communicator& comm) {
    EXPECT_EQ(std::string(comm.transportName()), std::string("shm+tcp"));
    EXPECT_EQ(comm.hostCount(), 2);
    EXPECT_EQ(comm.hostOf(comm.rank()), comm.rank() / 2);
  }, testOptions());
  runWorldOnHosts("ab", [&](Communicator& comm) {
    EXPECT_EQ(std::string(comm.transportName()), std::string("tcp"));
  }, testOptions());
  runWorldOnHosts("aaa", [&](Communicator& comm) {
    EXPECT_EQ(std::string(comm.transportName()), std::string("shm"));
  }, testOptions());
}

NODECCL_TEST(coll_hosts_large_and_other_collectives) {
  const size_t count = (size_t(1) << 20) + 3;  // chunked ring steps, uneven segments
  runWorldOnHosts("aabbb", [&](Communicator& comm) {
    const int n = comm.size();
    for (const DataType t : {DataType::kFloat32, DataType::kBFloat16}) {
      Bytes data = makeInput(comm.rank(), count, t, ReduceOp::kSum);
      allReduce(comm, data.data(), count, t, ReduceOp::kSum);
      if (!expectBytes(data, expectedReduction(n, count, t, ReduceOp::kSum), t,
                       describe("allReduce", comm, count, t, "aabbb"))) {
        return;
      }
    }
    // Flat algorithms over mixed steps: broadcast (chain at this size), all-gather and
    // reduce-scatter rings that cross between hosts twice.
    const size_t c = 100003;
    Bytes b = makeInput(3, c, DataType::kInt32, ReduceOp::kSum);
    Bytes mine = comm.rank() == 3 ? b : Bytes(b.size());
    broadcast(comm, mine.data(), c, DataType::kInt32, 3);
    expectBytes(mine, b, DataType::kInt32, describe("broadcast", comm, c, DataType::kInt32));
    Bytes in = makeInput(comm.rank(), c, DataType::kInt32, ReduceOp::kSum);
    Bytes all(in.size() * n);
    allGather(comm, in.data(), all.data(), c, DataType::kInt32);
    for (int r = 0; r < n; ++r) {
      Bytes want = makeInput(r, c, DataType::kInt32, ReduceOp::kSum);
      if (std::memcmp(all.data() + r * in.size(), want.data(), in.size()) != 0) {
        fail(strcat("allGather rank ", comm.rank(), ": block ", r, " differs"));
      }
    }
    Bytes rsIn = makeInput(comm.rank(), c * n, DataType::kFloat32, ReduceOp::kSum);
    Bytes rsOut(c * 4);
    reduceScatter(comm, rsIn.data(), rsOut.data(), c, DataType::kFloat32, ReduceOp::kSum);
    Bytes full = expectedReduction(n, c * n, DataType::kFloat32, ReduceOp::kSum);
    Bytes want(full.begin() + comm.rank() * c * 4, full.begin() + (comm.rank() + 1) * c * 4);
    expectBytes(rsOut, want, DataType::kFloat32,
                describe("reduceScatter", comm, c, DataType::kFloat32));
  }, testOptions());
}

NODECCL_TEST(coll_hosts_direct_small_collectives) {
  // The direct algorithms over the hybrid transport (blocking exchanges, some over TCP), chosen
  // by auto at these sizes and forced with "direct"; barrier too (dissemination under auto).
  for (const char* algo : {"auto", "direct"}) {
    CommOptions o = testOptions();
    o.algo = algo;
    runWorldOnHosts("abbab", [&](Communicator& comm) {
      const int n = comm.size(), r = comm.rank();
      const DataType t = DataType::kFloat32;
      for (size_t count : {size_t(0), size_t(1), size_t(13)}) {
        const std::string tag = strcat("abbab ", algo);
        Bytes in = makeInput(r, count, t, ReduceOp::kSum), all(n * count * 4), want;
        allGather(comm, in.data(), all.data(), count, t);
        for (int q = 0; q < n; ++q) {
          Bytes b = makeInput(q, count, t, ReduceOp::kSum);
          want.insert(want.end(), b.begin(), b.end());
        }
        expectBytes(all, want, t, describe("allGather", comm, count, t, tag.c_str()));
        Bytes rsIn = makeInput(r, n * count, t, ReduceOp::kAvg), rsOut(count * 4);
        reduceScatter(comm, rsIn.data(), rsOut.data(), count, t, ReduceOp::kAvg);
        const Bytes full = expectedReduction(n, n * count, t, ReduceOp::kAvg);
        expectBytes(rsOut, Bytes(full.begin() + r * count * 4, full.begin() + (r + 1) * count * 4),
                    t, describe("reduceScatter", comm, count, t, tag.c_str()));
        Bytes bc = makeInput(r == 2 ? 2 : 40 + r, count, t, ReduceOp::kSum);
        broadcast(comm, bc.data(), count, t, 2);
        expectBytes(bc, makeInput(2, count, t, ReduceOp::kSum), t,
                    describe("broadcast", comm, count, t, tag.c_str()));
        barrier(comm);
      }
    }, o);
  }
}
