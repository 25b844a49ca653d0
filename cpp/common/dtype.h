// SPDX-License-Identifier: Apache-2.0
// Element types and reduction operators. The numbering is part of the binding's contract with
// lib/dtype.ts (DTYPE_CODES, OP_CODES); the static_asserts below pin it so the two cannot drift.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nodeccl {

enum class DataType : int {
  kFloat32 = 0,
  kFloat64 = 1,
  kInt32 = 2,
  kInt8 = 3,
  kUint8 = 4,
  kFloat16 = 5,   // IEEE 754 binary16, stored as uint16_t
  kBFloat16 = 6,  // bfloat16 (upper half of a float32), stored as uint16_t
};
constexpr int kNumDataTypes = 7;

enum class ReduceOp : int {
  kSum = 0,
  kProd = 1,
  kMin = 2,
  kMax = 3,
  kAvg = 4,  // sum, then divide by the world size (integer division for integer types)
};
constexpr int kNumReduceOps = 5;

static_assert(static_cast<int>(DataType::kBFloat16) == kNumDataTypes - 1, "dtype table");
static_assert(static_cast<int>(ReduceOp::kAvg) == kNumReduceOps - 1, "op table");

inline size_t dtypeSize(DataType t) {
  switch (t) {
    case DataType::kFloat64: return 8;
    case DataType::kFloat32:
    case DataType::kInt32: return 4;
    case DataType::kFloat16:
    case DataType::kBFloat16: return 2;
    case DataType::kInt8:
    case DataType::kUint8: return 1;
  }
  return 0;
}

inline const char* dtypeName(DataType t) {
  switch (t) {
    case DataType::kFloat32: return "float32";
    case DataType::kFloat64: return "float64";
    case DataType::kInt32: return "int32";
    case DataType::kInt8: return "int8";
    case DataType::kUint8: return "uint8";
    case DataType::kFloat16: return "float16";
    case DataType::kBFloat16: return "bfloat16";
  }
  return "unknown";
}

inline const char* reduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kProd: return "prod";
    case ReduceOp::kMin: return "min";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kAvg: return "avg";
  }
  return "unknown";
}

inline bool isHalfType(DataType t) {
  return t == DataType::kFloat16 || t == DataType::kBFloat16;
}

}  // namespace nodeccl
