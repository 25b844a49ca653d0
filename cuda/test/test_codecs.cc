// SPDX-License-Identifier: Apache-2.0
// GPU codecs and reductions against the CPU: float16/bfloat16 against cpp/reduce's conversions
// (bit for bit, including NaN, infinities, subnormals and ties), int8 and sign1 against
// quant_reference.cc (codes exact; sign1 scales within 1 ulp, since the GPU sums |x| in another
// order), and reduceInto against cpp/reduce for every dtype and operator (bit for bit).
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/error.h"
#include "device_buffer.h"
#include "quant_reference.h"
#include "reduce/reduce.h"

namespace nodeccl_cuda_test {
namespace {

using nodeccl::DataType;
using nodeccl::ReduceOp;
using nodeccl::cuda::Codec;

// Random normals at several scales plus the edge cases of half rounding.
std::vector<float> codecInputs(size_t n) {
  std::vector<float> x = randomFloats(n, 99);
  for (size_t i = 0; i < n; i += 7) x[i] *= 1e-5f;   // half subnormals
  for (size_t i = 3; i < n; i += 11) x[i] *= 3e4f;   // near and past float16's max
  const float edges[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity(),
                         std::numeric_limits<float>::quiet_NaN(), 65504.0f, 65520.0f,
                         1.0f + 1.0f / 2048, 5.9604645e-8f, 1e-45f};
  for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]) && i < n; ++i) x[i] = edges[i];
  return x;
}

void checkHalf(Codec codec, DataType dtype) {
  for (size_t n : {size_t(0), size_t(1), size_t(1001), size_t(1) << 20}) {
    std::vector<float> x = codecInputs(n);
    DeviceArray<float> src(x);
    DeviceArray<uint16_t> enc(n);
    nodeccl::cuda::encode(kDevice, codec, src.get(), n, 0, enc.get(), nullptr);
    std::vector<uint16_t> cpu(n);
    nodeccl::fromFloat32(x.data(), cpu.data(), n, dtype);
    EXPECT_TRUE(enc.host() == cpu);

    DeviceArray<float> dec(n);
    nodeccl::cuda::decode(kDevice, codec, enc.get(), nullptr, n, 0, dec.get());
    std::vector<float> wide(n);
    nodeccl::toFloat32(cpu.data(), wide.data(), n, dtype);
    expectClose(nodeccl::dtypeName(dtype), dec.host(), wide, 0);
  }
}

// Float results compare as values, with every NaN equal to every other: x86 and CUDA differ in
// the NaN they return (x86 keeps an operand's payload and sign, CUDA gives its canonical NaN).
bool sameValues(DataType dtype, const std::vector<uint8_t>& a, const std::vector<uint8_t>& b,
                size_t n) {
  auto widen = [&](const std::vector<uint8_t>& bytes, size_t i) -> double {
    const uint8_t* p = bytes.data() + i * nodeccl::dtypeSize(dtype);
    if (dtype == DataType::kFloat64) return *reinterpret_cast<const double*>(p);
    if (dtype == DataType::kFloat32) return *reinterpret_cast<const float*>(p);
    float f;
    nodeccl::toFloat32(p, &f, 1, dtype);
    return f;
  };
  if (dtype != DataType::kFloat64 && dtype != DataType::kFloat32 && !nodeccl::isHalfType(dtype)) {
    return false;
  }
  for (size_t i = 0; i < n; ++i) {
    double x = widen(a, i), y = widen(b, i);
    if (!(x == y || (x != x && y != y))) return false;
  }
  return true;
}

}  // namespace

NODECCL_TEST(cuda_float16_codec_matches_cpu) { checkHalf(Codec::kFloat16, DataType::kFloat16); }
NODECCL_TEST(cuda_bfloat16_codec_matches_cpu) { checkHalf(Codec::kBFloat16, DataType::kBFloat16); }

NODECCL_TEST(cuda_int8_codec_matches_reference) {
  for (size_t n : {size_t(1), size_t(4095), size_t(100000)}) {
    const size_t block = 2048;
    std::vector<float> x = randomFloats(n, 7);
    for (size_t i = 0; i < std::min(n, block); ++i) x[i] = 0;  // an all-zero block
    std::vector<int8_t> q;
    std::vector<float> scales;
    int8Encode(x, block, q, scales);
    DeviceArray<float> src(x);
    DeviceArray<int8_t> enc(n);
    DeviceArray<float> dscales(scales.size());
    nodeccl::cuda::encode(kDevice, Codec::kInt8, src.get(), n, block, enc.get(), dscales.get());
    EXPECT_TRUE(enc.host() == q);
    expectClose("int8 scales", dscales.host(), scales, 0);

    // Decoding is within half a step of the input.
    DeviceArray<float> dec(n);
    nodeccl::cuda::decode(kDevice, Codec::kInt8, enc.get(), dscales.get(), n, block, dec.get());
    std::vector<float> back = dec.host();
    for (size_t i = 0; i < n; ++i) {
      EXPECT_NEAR(back[i], x[i], scales[i / block] * 0.5f * 1.0001f);
      if (std::fabs(back[i] - x[i]) > scales[i / block]) break;
    }
  }
}

NODECCL_TEST(cuda_sign1_codec_matches_reference) {
  for (size_t n : {size_t(1), size_t(33), size_t(100000)}) {
    const size_t block = 2048;
    std::vector<float> x = randomFloats(n, 11);
    std::vector<uint32_t> bits;
    std::vector<float> scales;
    sign1Encode(x, block, bits, scales);
    DeviceArray<float> src(x);
    DeviceArray<uint32_t> enc(bits.size());
    DeviceArray<float> dscales(scales.size());
    nodeccl::cuda::encode(kDevice, Codec::kSign1, src.get(), n, block, enc.get(), dscales.get());
    EXPECT_TRUE(enc.host() == bits);
    expectClose("sign1 scales", dscales.host(), scales, 1);

    DeviceArray<float> dec(n);
    nodeccl::cuda::decode(kDevice, Codec::kSign1, enc.get(), dscales.get(), n, block, dec.get());
    std::vector<float> back = dec.host();
    size_t wrong = 0;
    for (size_t i = 0; i < n; ++i) {
      float want = std::signbit(x[i]) ? -scales[i / block] : scales[i / block];
      wrong += ulps(back[i], want) > 1;
    }
    EXPECT_EQ(wrong, size_t(0));
  }
}

NODECCL_TEST(cuda_codec_rejects_bad_block) {
  DeviceArray<float> a(64);
  EXPECT_THROWS_CODE(nodeccl::cuda::encode(kDevice, Codec::kSign1, a.get(), 64, 48, a.get(),
                                           a.get()),
                     nodeccl::ErrorCode::kInvalidArgument, "multiple of 32");
}

// reduceInto on random bytes of every dtype, so integers overflow and floats include NaN.
NODECCL_TEST(cuda_reduce_matches_cpu) {
  const size_t n = 100003;
  for (int t = 0; t < nodeccl::kNumDataTypes; ++t) {
    DataType dtype = static_cast<DataType>(t);
    size_t bytes = n * nodeccl::dtypeSize(dtype);
    std::vector<uint8_t> a(bytes), b(bytes);
    std::mt19937 rng(static_cast<uint32_t>(t));
    for (auto& x : a) x = static_cast<uint8_t>(rng());
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    for (int o = 0; o < nodeccl::kNumReduceOps; ++o) {
      ReduceOp op = static_cast<ReduceOp>(o);
      std::vector<uint8_t> cpu = a;
      nodeccl::reduceInto(cpu.data(), b.data(), n, dtype, op);
      DeviceArray<uint8_t> da(a), db(b);
      nodeccl::cuda::reduceInto(kDevice, da.get(), db.get(), n, dtype, op);
      std::vector<uint8_t> gpu = da.host();
      bool same = gpu == cpu || sameValues(dtype, gpu, cpu, n);
      if (!same) {
        nodeccl_test::fail(std::string("reduceInto ") + nodeccl::dtypeName(dtype) + " " +
                           nodeccl::reduceOpName(op) + ": GPU and CPU differ");
      }
    }
  }
}

}  // namespace nodeccl_cuda_test
