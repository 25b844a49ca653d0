// SPDX-License-Identifier: Apache-2.0
// Plain CPU encoders of the int8 and sign1 codecs as specified in cuda/quant.cu, one element at
// a time, for the GPU kernels to be checked against. (float16/bfloat16 are checked against the
// core's own conversions in cpp/reduce.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace nodeccl_cuda_test {

void int8Encode(const std::vector<float>& x, size_t block, std::vector<int8_t>& q,
                std::vector<float>& scales);
void sign1Encode(const std::vector<float>& x, size_t block, std::vector<uint32_t>& bits,
                 std::vector<float>& scales);

}  // namespace nodeccl_cuda_test
