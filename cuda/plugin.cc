// SPDX-License-Identifier: Apache-2.0
// The plugin's entry point: api.h's function table over the functions of cuda.h and nccl.h,
// each wrapped so that an exception becomes a CudaStatus and never crosses into the addon.
#include <cstdio>
#include <cstring>
#include <exception>

#include "api.h"
#include "common/error.h"
#include "cuda.h"
#include "nccl/nccl.h"
#include "nccl/nccl_api.h"

namespace nodeccl {
namespace cuda {
namespace {

void setStatus(CudaStatus* st, ErrorCode code, const char* message) {
  if (st == nullptr) return;
  st->code = static_cast<int>(code);
  std::snprintf(st->message, sizeof(st->message), "%s", message);
}

template <typename F>
bool guard(CudaStatus* st, F&& fn) {
  try {
    fn();
    return true;
  } catch (const Error& e) {
    setStatus(st, e.code(), e.what());
  } catch (const std::exception& e) {
    setStatus(st, ErrorCode::kInternal, e.what());
  }
  return false;
}

void copyString(const std::string& s, char* out, size_t len) {
  if (len > 0) std::snprintf(out, len, "%s", s.c_str());
}

const Api kApi = {
    kApiVersion,
    sizeof(Api),
    [](int* count, CudaStatus* st) { return guard(st, [&] { *count = deviceCount(); }); },
    [](int device, char* out, size_t len, CudaStatus* st) {
      return guard(st, [&] { copyString(describeDevice(device), out, len); });
    },
    [](int device, size_t bytes, void** out, CudaStatus* st) {
      return guard(st, [&] { *out = alloc(device, bytes); });
    },
    [](int device, void* ptr, CudaStatus* st) {
      return guard(st, [&] { release(device, ptr); });
    },
    [](int device, void* ptr, size_t bytes, CudaStatus* st) {
      return guard(st, [&] { zero(device, ptr, bytes); });
    },
    [](int device, void* dst, const void* src, size_t bytes, CudaStatus* st) {
      return guard(st, [&] { toDevice(device, dst, src, bytes); });
    },
    [](int device, void* dst, const void* src, size_t bytes, CudaStatus* st) {
      return guard(st, [&] { toHost(device, dst, src, bytes); });
    },
    [](int device, CudaStatus* st) { return guard(st, [&] { synchronize(device); }); },
    [](int device, const optim::SgdOptions* o, const optim::ParamList* list,
       float* const* bufs, CudaStatus* st) {
      return guard(st, [&] { sgdStep(device, *o, *list, bufs); });
    },
    [](int device, const optim::RmspropOptions* o, const optim::ParamList* list,
       float* const* sq, float* const* bufs, float* const* ga, CudaStatus* st) {
      return guard(st, [&] { rmspropStep(device, *o, *list, sq, bufs, ga); });
    },
    [](int device, const optim::AdamOptions* o, const optim::ParamList* list, float* const* m,
       float* const* v, float* const* vmax, CudaStatus* st) {
      return guard(st, [&] { adamStep(device, *o, *list, m, v, vmax); });
    },
    [](int device, int codec, const float* src, size_t count, size_t block, void* dst,
       float* scales, CudaStatus* st) {
      return guard(st, [&] { encode(device, Codec(codec), src, count, block, dst, scales); });
    },
    [](int device, int codec, const void* src, const float* scales, size_t count, size_t block,
       float* dst, CudaStatus* st) {
      return guard(st, [&] { decode(device, Codec(codec), src, scales, count, block, dst); });
    },
    [](int device, void* dst, const void* src, size_t count, int dtype, int op,
       CudaStatus* st) {
      return guard(st, [&] {
        reduceInto(device, dst, src, count, DataType(dtype), ReduceOp(op));
      });
    },
    [](int* version, char* loadedFrom, size_t len, CudaStatus* st) {
      return guard(st, [&] {
        const nccl::Api& api = nccl::load();
        *version = api.version;
        copyString(api.loadedFrom, loadedFrom, len);
      });
    },
    [](uint8_t* out, CudaStatus* st) { return guard(st, [&] { nccl::uniqueId(out); }); },
    [](int device, int rank, int size, const uint8_t* id, void** comm, CudaStatus* st) {
      return guard(st, [&] { *comm = nccl::init(device, rank, size, id); });
    },
    [](void* comm, const NcclCall* call, CudaStatus* st) {
      return guard(st, [&] { nccl::run(*static_cast<nccl::Comm*>(comm), *call); });
    },
    [](void* comm, const char* reason, CudaStatus* st) {
      return guard(st, [&] { nccl::abort(*static_cast<nccl::Comm*>(comm), reason); });
    },
    [](void* comm, CudaStatus* st) {
      return guard(st, [&] { nccl::destroy(static_cast<nccl::Comm*>(comm)); });
    },
};

}  // namespace
}  // namespace cuda
}  // namespace nodeccl

extern "C" __attribute__((visibility("default"))) const nodeccl::cuda::Api* nodeccl_cuda_api(
    int version) {
  return version == nodeccl::cuda::kApiVersion ? &nodeccl::cuda::kApi : nullptr;
}
