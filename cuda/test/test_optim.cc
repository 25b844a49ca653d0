// SPDX-License-Identifier: Apache-2.0
// GPU optimizers against the CPU kernels (cpp/optim) on the same random inputs: several steps
// over a list of tensors whose sizes cover 0, 1, odd, chunk-crossing and unaligned sub-arrays,
// for every option combination. Both sides use correctly rounded float32 operations in the same
// order, so the results should match bit for bit; up to 2 ulps are tolerated in case the CPU
// build uses fused multiply-add, and the worst distance is printed.
#include <cstdio>
#include <functional>
#include <memory>
#include <vector>

#include "device_buffer.h"
#include "common/error.h"
#include "optim/optim.h"

namespace nodeccl_cuda_test {
namespace {

using nodeccl::optim::ParamList;

// Sizes: empty, one, odd, more than one 65536-element chunk, and a large one.
const std::vector<size_t> kSizes = {0, 1, 7, 1000, 65537, 200003};
constexpr int kSteps = 3;
constexpr int kMaxUlps = 2;

// A list of tensors on both sides: host vectors for the CPU kernel, device copies for the GPU.
// Tensor i lives at offset i % 3 floats into its allocation, so some are not 16-byte aligned.
struct Side {
  std::vector<std::vector<float>> host;              // [array][flattened, padded]
  std::vector<std::unique_ptr<DeviceArray<float>>> dev;
  std::vector<std::vector<float*>> hostPtrs, devPtrs;  // [array][tensor]
};

Side makeSide(size_t arrays, uint32_t seed) {
  Side s;
  size_t total = 0;
  for (size_t n : kSizes) total += n + 3;
  for (size_t a = 0; a < arrays; ++a) {
    // Arrays 2.. are optimizer state: non-negative where a square average is expected.
    std::vector<float> v = randomFloats(total, seed + static_cast<uint32_t>(a), a == 1 ? 0.1f : 1);
    if (a >= 2) for (float& x : v) x = x * x * 0.01f;
    s.host.push_back(v);
    s.dev.push_back(std::make_unique<DeviceArray<float>>(v));
  }
  s.hostPtrs.assign(arrays, {});
  s.devPtrs.assign(arrays, {});
  for (size_t a = 0; a < arrays; ++a) {
    size_t off = 0;
    for (size_t i = 0; i < kSizes.size(); ++i) {
      s.hostPtrs[a].push_back(s.host[a].data() + off + i % 3);
      s.devPtrs[a].push_back(s.dev[a]->get() + off + i % 3);
      off += kSizes[i] + 3;
    }
  }
  return s;
}

// Runs `cpu` and `gpu` for kSteps steps on the same data and compares every array.
void compare(const char* name, size_t arrays,
             const std::function<void(ParamList&, std::vector<std::vector<float*>>&)>& cpu,
             const std::function<void(ParamList&, std::vector<std::vector<float*>>&)>& gpu) {
  Side s = makeSide(arrays, 1234);
  std::vector<double> cpuSteps(kSizes.size(), 0), gpuSteps(kSizes.size(), 0);
  ParamList cl{kSizes.size(), s.hostPtrs[0].data(), s.hostPtrs[1].data(), kSizes.data(),
               cpuSteps.data()};
  ParamList gl{kSizes.size(), s.devPtrs[0].data(), s.devPtrs[1].data(), kSizes.data(),
               gpuSteps.data()};
  for (int step = 0; step < kSteps; ++step) {
    cpu(cl, s.hostPtrs);
    gpu(gl, s.devPtrs);
  }
  int64_t worst = 0;
  for (size_t a = 0; a < arrays; ++a) {
    std::vector<float> back = s.dev[a]->host();
    int64_t w = expectClose(std::string(name) + " array " + std::to_string(a), back, s.host[a],
                            kMaxUlps);
    if (w > worst) worst = w;
  }
  EXPECT_TRUE(cpuSteps == gpuSteps);
  std::printf("     %-40s worst %lld ulps\n", name, static_cast<long long>(worst));
}

float* const* arr(std::vector<std::vector<float*>>& p, size_t a) {
  return a < p.size() ? p[a].data() : nullptr;
}

}  // namespace

NODECCL_TEST(cuda_adam_matches_cpu) {
  for (int variant = 0; variant < 6; ++variant) {
    nodeccl::optim::AdamOptions o;
    o.lr = 1e-2;
    o.amsgrad = variant % 2 == 1;
    o.weightDecay = variant / 2 == 0 ? 0 : 0.01;
    o.decoupled = variant / 2 == 2;
    size_t arrays = o.amsgrad ? 5 : 4;
    std::string name = nodeccl::strcat(o.decoupled ? "AdamW" : "Adam", " wd ", o.weightDecay,
                               o.amsgrad ? " amsgrad" : "");
    compare(name.c_str(), arrays,
            [&](ParamList& l, auto& p) {
              nodeccl::optim::adamStep(o, l, arr(p, 2), arr(p, 3), o.amsgrad ? arr(p, 4) : nullptr);
            },
            [&](ParamList& l, auto& p) {
              nodeccl::cuda::adamStep(kDevice, o, l, arr(p, 2), arr(p, 3),
                                      o.amsgrad ? arr(p, 4) : nullptr);
            });
  }
}

NODECCL_TEST(cuda_sgd_matches_cpu) {
  const double momenta[] = {0, 0.9, 0.9};
  for (int variant = 0; variant < 6; ++variant) {
    nodeccl::optim::SgdOptions o;
    o.lr = 0.1;
    o.momentum = momenta[variant % 3];
    o.nesterov = variant % 3 == 2;
    o.dampening = variant % 3 == 1 ? 0.1 : 0;
    o.weightDecay = variant >= 3 ? 1e-3 : 0;
    std::string name = nodeccl::strcat("SGD momentum ", o.momentum, o.nesterov ? " nesterov" : "",
                               " wd ", o.weightDecay);
    compare(name.c_str(), o.momentum != 0 ? 3 : 2,
            [&](ParamList& l, auto& p) { nodeccl::optim::sgdStep(o, l, arr(p, 2)); },
            [&](ParamList& l, auto& p) { nodeccl::cuda::sgdStep(kDevice, o, l, arr(p, 2)); });
  }
}

NODECCL_TEST(cuda_rmsprop_matches_cpu) {
  for (int variant = 0; variant < 8; ++variant) {
    nodeccl::optim::RmspropOptions o;
    o.weightDecay = variant & 4 ? 1e-3 : 0;
    o.centered = (variant & 2) != 0;
    o.momentum = variant & 1 ? 0.9 : 0;
    std::string name = nodeccl::strcat("RMSprop wd ", o.weightDecay, o.centered ? " centered" : "",
                               " momentum ", o.momentum);
    // Arrays: p, g, squareAvg, momentum buffer, grad avg (all present; unused ones unchanged).
    compare(name.c_str(), 5,
            [&](ParamList& l, auto& p) {
              nodeccl::optim::rmspropStep(o, l, arr(p, 2), o.momentum ? arr(p, 3) : nullptr,
                                          o.centered ? arr(p, 4) : nullptr);
            },
            [&](ParamList& l, auto& p) {
              nodeccl::cuda::rmspropStep(kDevice, o, l, arr(p, 2), o.momentum ? arr(p, 3) : nullptr,
                                         o.centered ? arr(p, 4) : nullptr);
            });
  }
}

NODECCL_TEST(cuda_optim_rejects_like_cpu) {
  // The GPU path runs the CPU kernels' checks first: a bad option or an overlap throws before
  // anything is launched.
  nodeccl::optim::AdamOptions o;
  o.beta1 = 1.5;
  DeviceArray<float> a(16);
  float* p[1] = {a.get()};
  const float* g[1] = {a.get() + 8};
  float* m[1] = {a.get() + 4};
  float* v[1] = {a.get() + 12};
  size_t sizes[1] = {4};
  double steps[1] = {0};
  ParamList l{1, p, g, sizes, steps};
  EXPECT_THROWS_CODE(nodeccl::cuda::adamStep(kDevice, o, l, m, v, nullptr),
                     nodeccl::ErrorCode::kInvalidArgument, "betas[0]");
  o.beta1 = 0.9;
  m[0] = a.get() + 2;  // overlaps params
  EXPECT_THROWS_CODE(nodeccl::cuda::adamStep(kDevice, o, l, m, v, nullptr),
                     nodeccl::ErrorCode::kInvalidArgument, "share memory");
  EXPECT_EQ(steps[0], 0.0);
}

}  // namespace nodeccl_cuda_test
