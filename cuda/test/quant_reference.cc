// SPDX-License-Identifier: Apache-2.0
// CPU reference of the int8 and sign1 codecs (see quant_reference.h and cuda/quant.cu).
#include "quant_reference.h"

#include <algorithm>
#include <cmath>

namespace nodeccl_cuda_test {

void int8Encode(const std::vector<float>& x, size_t block, std::vector<int8_t>& q,
                std::vector<float>& scales) {
  q.assign(x.size(), 0);
  scales.assign((x.size() + block - 1) / block, 0.0f);
  for (size_t b = 0; b * block < x.size(); ++b) {
    size_t end = std::min(x.size(), (b + 1) * block);
    float absmax = 0;
    for (size_t i = b * block; i < end; ++i) absmax = std::max(absmax, std::fabs(x[i]));
    float scale = absmax / 127.0f;
    scales[b] = scale;
    for (size_t i = b * block; i < end; ++i) {
      float v = scale == 0 ? 0.0f : std::nearbyint(x[i] / scale);
      q[i] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, v)));
    }
  }
}

void sign1Encode(const std::vector<float>& x, size_t block, std::vector<uint32_t>& bits,
                 std::vector<float>& scales) {
  bits.assign((x.size() + 31) / 32, 0);
  scales.assign((x.size() + block - 1) / block, 0.0f);
  for (size_t b = 0; b * block < x.size(); ++b) {
    size_t end = std::min(x.size(), (b + 1) * block);
    double sum = 0;
    for (size_t i = b * block; i < end; ++i) sum += std::fabs(static_cast<double>(x[i]));
    scales[b] = static_cast<float>(sum / static_cast<double>(end - b * block));
    for (size_t i = b * block; i < end; ++i) {
      if (std::signbit(x[i])) bits[i / 32] |= 1u << (i % 32);
    }
  }
}

}  // namespace nodeccl_cuda_test
