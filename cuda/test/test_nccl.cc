// SPDX-License-Identifier: Apache-2.0
// NCCL through nodeccl's backend: one rank per visible GPU (up to 4), ranks as threads sharing a
// unique id, each collective checked against values worked out on the host; then abort. With
// one GPU this is a world of one, which still runs every NCCL call end to end.
// Skips (passing, with a note) when libnccl.so.2 cannot be loaded, unless NODECCL_REQUIRE_NCCL=1.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common/dtype.h"
#include "common/error.h"
#include "device_buffer.h"
#include "nccl/nccl.h"
#include "nccl/nccl_api.h"

namespace nodeccl_cuda_test {
namespace {

using nodeccl::cuda::NcclCall;
using nodeccl::cuda::NcclOp;

bool ncclAvailable() {
  try {
    const auto& api = nodeccl::nccl::load();
    std::printf("     NCCL %s from %s\n", nodeccl::nccl::versionString(api.version).c_str(),
                api.loadedFrom.c_str());
    return true;
  } catch (const nodeccl::Error& e) {
    // NODECCL_REQUIRE_NCCL=1 (set by bench/gpu/run.sh when it found NCCL) makes this a failure.
    const char* require = std::getenv("NODECCL_REQUIRE_NCCL");
    if (require != nullptr && std::string(require) == "1") throw;
    std::printf("     skipped: %s\n", e.what());
    return false;
  }
}

float* devAlloc(int dev, size_t n) {
  return static_cast<float*>(nodeccl::cuda::alloc(dev, n * sizeof(float)));
}

std::vector<float> host(int dev, const float* p, size_t n) {
  std::vector<float> out(n);
  nodeccl::cuda::toHost(dev, out.data(), p, n * sizeof(float));
  return out;
}

// Rank r contributes r + 1 + i / 1000 at element i; sums and gathers follow from that.
void rankBody(int rank, int size, const uint8_t* id) {
  const size_t n = 1 << 20;
  nodeccl::nccl::Comm* comm = nodeccl::nccl::init(rank, rank, size, id);
  std::vector<float> mine(n * size);
  for (size_t i = 0; i < mine.size(); ++i) mine[i] = float(rank + 1) + float(i % 1000) / 1000;
  float* buf = devAlloc(rank, n * size);
  float* out = devAlloc(rank, n * size);
  nodeccl::cuda::toDevice(rank, buf, mine.data(), n * sizeof(float));
  auto call = [&](NcclOp op, const void* s, void* r, size_t count, int peer = 0) {
    NcclCall c;
    c.op = op;
    c.send = s;
    c.recv = r;
    c.count = count;
    c.dtype = static_cast<int>(nodeccl::DataType::kFloat32);
    c.peer = peer;
    c.timeoutMs = 60000;
    nodeccl::nccl::run(*comm, c);
  };
  float rankSum = float(size * (size + 1) / 2);

  // allReduce (in place): sum over ranks of (r + 1 + f) = rankSum + size * f.
  call(NcclOp::kAllReduce, buf, buf, n);
  std::vector<float> got = host(rank, buf, n);
  EXPECT_NEAR(got[7], rankSum + size * 0.007f, 1e-4);

  // broadcast from the last rank: its value everywhere.
  nodeccl::cuda::toDevice(rank, buf, mine.data(), n * sizeof(float));
  call(NcclOp::kBroadcast, buf, buf, n, size - 1);
  EXPECT_NEAR(host(rank, buf, 1)[0], float(size), 1e-6);

  // allGather: block k holds rank k's contribution.
  nodeccl::cuda::toDevice(rank, buf, mine.data(), n * sizeof(float));
  call(NcclOp::kAllGather, buf, out, n);
  got = host(rank, out, n * size);
  for (int k = 0; k < size; ++k) EXPECT_NEAR(got[k * n + 1], float(k + 1) + 0.001f, 1e-6);

  // reduceScatter: this rank's block of the sum.
  nodeccl::cuda::toDevice(rank, buf, mine.data(), n * size * sizeof(float));
  call(NcclOp::kReduceScatter, buf, out, n);
  EXPECT_NEAR(host(rank, out, 3)[2], rankSum + size * float((rank * n + 2) % 1000) / 1000, 1e-3);

  // send/recv around the ring (needs two ranks: a lone send to oneself never completes).
  if (size > 1) {
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    nodeccl::cuda::toDevice(rank, buf, mine.data(), n * sizeof(float));
    if (rank % 2 == 0) {
      call(NcclOp::kSend, buf, nullptr, n, next);
      call(NcclOp::kRecv, nullptr, out, n, prev);
    } else {
      call(NcclOp::kRecv, nullptr, out, n, prev);
      call(NcclOp::kSend, buf, nullptr, n, next);
    }
    EXPECT_NEAR(host(rank, out, 1)[0], float(prev + 1), 1e-6);
  }

  // abort: later calls fail with kAborted and NCCL's resources are gone.
  nodeccl::nccl::abort(*comm, "test abort");
  EXPECT_THROWS_CODE(call(NcclOp::kAllReduce, buf, buf, n), nodeccl::ErrorCode::kAborted,
                     "test abort");
  nodeccl::nccl::destroy(comm);
  nodeccl::cuda::release(rank, buf);
  nodeccl::cuda::release(rank, out);
}

}  // namespace

NODECCL_TEST(cuda_nccl_collectives) {
  if (!ncclAvailable()) return;
  int size = std::min(nodeccl::cuda::deviceCount(), 4);
  std::vector<uint8_t> id(nodeccl::cuda::kNcclIdBytes);
  nodeccl::nccl::uniqueId(id.data());
  std::printf("     world of %d rank(s), one per GPU\n", size);
  std::vector<std::thread> ranks;
  for (int r = 0; r < size; ++r) {
    ranks.emplace_back([r, size, &id] {
      try {
        rankBody(r, size, id.data());
      } catch (const std::exception& e) {
        nodeccl_test::fail(std::string("rank ") + std::to_string(r) + ": " + e.what());
      }
    });
  }
  for (auto& t : ranks) t.join();
}

}  // namespace nodeccl_cuda_test
