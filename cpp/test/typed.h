// SPDX-License-Identifier: Apache-2.0
// Test helper: read and write elements of any dtype in a byte buffer as double (float types) or
// int64 (integer types), so reference computations can be written once for every dtype.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/dtype.h"
#include "common/half.h"

namespace nodeccl_test {

using Bytes = std::vector<unsigned char>;

inline bool isIntType(nodeccl::DataType t) {
  using nodeccl::DataType;
  return t == DataType::kInt32 || t == DataType::kInt8 || t == DataType::kUint8;
}

// Wraps an int64 into an integer dtype modulo 2^bits (two's complement).
inline int64_t wrapTo(int64_t v, nodeccl::DataType t) {
  using nodeccl::DataType;
  uint64_t u = static_cast<uint64_t>(v);
  switch (t) {
    case DataType::kInt32: return static_cast<int32_t>(static_cast<uint32_t>(u));
    case DataType::kInt8: return static_cast<int8_t>(static_cast<uint8_t>(u));
    case DataType::kUint8: return static_cast<uint8_t>(u);
    default: return v;
  }
}

inline double loadF(const Bytes& buf, size_t i, nodeccl::DataType t) {
  using nodeccl::DataType;
  const unsigned char* p = buf.data() + i * nodeccl::dtypeSize(t);
  uint16_t h;
  float f;
  double d;
  switch (t) {
    case DataType::kFloat32: std::memcpy(&f, p, 4); return f;
    case DataType::kFloat64: std::memcpy(&d, p, 8); return d;
    case DataType::kFloat16: std::memcpy(&h, p, 2); return nodeccl::halfToFloat(h);
    case DataType::kBFloat16: std::memcpy(&h, p, 2); return nodeccl::bf16ToFloat(h);
    default: return 0.0 / 0.0;
  }
}

inline int64_t loadI(const Bytes& buf, size_t i, nodeccl::DataType t) {
  using nodeccl::DataType;
  const unsigned char* p = buf.data() + i * nodeccl::dtypeSize(t);
  int32_t v;
  switch (t) {
    case DataType::kInt32: std::memcpy(&v, p, 4); return v;
    case DataType::kInt8: return static_cast<int8_t>(*p);
    case DataType::kUint8: return *p;
    default: return 0;
  }
}

// Either loader, as a double (exact for every int32), for messages and generic comparisons.
inline double loadAny(const Bytes& buf, size_t i, nodeccl::DataType t) {
  return isIntType(t) ? static_cast<double>(loadI(buf, i, t)) : loadF(buf, i, t);
}

// Stores `v` into a float dtype; half types round to nearest even (tests store values that
// are exact in the dtype unless they mean to test the rounding).
inline void storeF(Bytes& buf, size_t i, nodeccl::DataType t, double v) {
  using nodeccl::DataType;
  unsigned char* p = buf.data() + i * nodeccl::dtypeSize(t);
  float f = static_cast<float>(v);
  uint16_t h;
  switch (t) {
    case DataType::kFloat32: std::memcpy(p, &f, 4); break;
    case DataType::kFloat64: std::memcpy(p, &v, 8); break;
    case DataType::kFloat16: h = nodeccl::floatToHalf(f); std::memcpy(p, &h, 2); break;
    case DataType::kBFloat16: h = nodeccl::floatToBf16(f); std::memcpy(p, &h, 2); break;
    default: break;
  }
}

// Stores `v` wrapped into an integer dtype.
inline void storeI(Bytes& buf, size_t i, nodeccl::DataType t, int64_t v) {
  unsigned char* p = buf.data() + i * nodeccl::dtypeSize(t);
  int32_t w = static_cast<int32_t>(wrapTo(v, t));
  if (t == nodeccl::DataType::kInt32) std::memcpy(p, &w, 4);
  else *p = static_cast<unsigned char>(w);
}

constexpr nodeccl::DataType kAllTypes[] = {
    nodeccl::DataType::kFloat32, nodeccl::DataType::kFloat64, nodeccl::DataType::kInt32,
    nodeccl::DataType::kInt8,    nodeccl::DataType::kUint8,   nodeccl::DataType::kFloat16,
    nodeccl::DataType::kBFloat16};
constexpr nodeccl::ReduceOp kAllOps[] = {nodeccl::ReduceOp::kSum, nodeccl::ReduceOp::kProd,
                                         nodeccl::ReduceOp::kMin, nodeccl::ReduceOp::kMax,
                                         nodeccl::ReduceOp::kAvg};

}  // namespace nodeccl_test
