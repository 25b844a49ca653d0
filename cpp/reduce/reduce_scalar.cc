// SPDX-License-Identifier: Apache-2.0
// The scalar reference kernels: generic.inl compiled for the baseline target, runnable on any
// CPU. The other variants are tested against this table (cpp/test/test_reduce.cc).
#include <cstdint>
#include <type_traits>

#include "common/half.h"
#include "reduce/kernels.h"

namespace nodeccl {
namespace {
using reduce_detail::KernelTable;
#include "reduce/generic.inl"
}  // namespace

namespace reduce_detail {

const KernelTable& scalarKernels() {
  static const KernelTable table = genericTable();
  return table;
}

}  // namespace reduce_detail
}  // namespace nodeccl
