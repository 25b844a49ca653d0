// SPDX-License-Identifier: Apache-2.0
// The plugin's internal C++ interface: the functions behind api.h's table, throwing
// nodeccl::Error. The C++ test binary (cuda/test) calls these directly.
//
// Thread safety: each device has one stream and one set of staging buffers, guarded by that
// device's mutex; every call below returns only when its work on the device has finished.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "api.h"
#include "common/dtype.h"
#include "optim/optim.h"

namespace nodeccl {
namespace cuda {

// Throws kIo "what: cudaErrorName (description)" unless `err` is cudaSuccess (0).
void check(int err, const char* what);

// ---- runtime.cu ---------------------------------------------------------------------------
int deviceCount();  // throws with the CUDA error when there is no driver or device
std::string describeDevice(int device);
void* alloc(int device, size_t bytes);
void release(int device, void* ptr);
void zero(int device, void* ptr, size_t bytes);
void toDevice(int device, void* dst, const void* src, size_t bytes);
void toHost(int device, void* dst, const void* src, size_t bytes);
void synchronize(int device);

// ---- optim_*.cu: checks as the CPU kernels do, then one fused launch, then waits -----------
void sgdStep(int device, const optim::SgdOptions& o, const optim::ParamList& list,
             float* const* momentumBuffers);
void rmspropStep(int device, const optim::RmspropOptions& o, const optim::ParamList& list,
                 float* const* squareAvgs, float* const* momentumBuffers,
                 float* const* gradAvgs);
void adamStep(int device, const optim::AdamOptions& o, const optim::ParamList& list,
              float* const* expAvgs, float* const* expAvgSqs, float* const* maxExpAvgSqs);

// ---- quant.cu, reduce.cu -------------------------------------------------------------------
// Scales: ceil(count / block) floats (int8, sign1); sign1's dst holds ceil(count / 32) words
// and needs `block` to be a multiple of 32.
void encode(int device, Codec codec, const float* src, size_t count, size_t block, void* dst,
            float* scales);
void decode(int device, Codec codec, const void* src, const float* scales, size_t count,
            size_t block, float* dst);
void reduceInto(int device, void* dst, const void* src, size_t count, DataType dtype,
                ReduceOp op);

}  // namespace cuda
}  // namespace nodeccl
