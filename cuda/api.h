// SPDX-License-Identifier: Apache-2.0
// The contract between the addon and the CUDA plugin (nodeccl_cuda.so): one table of plain
// functions that the addon finds with dlsym, so the addon itself never links CUDA and still
// loads on machines without a GPU, a driver or the plugin.
//
// Both sides are built from the same tree by the same compiler; `version` and `size` guard
// against a stale plugin left next to a newer addon. Every function returns true on success;
// on failure it fills `CudaStatus` (a nodeccl::ErrorCode number and a message) and returns
// false. No exception crosses the boundary. Device pointers travel as plain pointers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "optim/optim.h"

namespace nodeccl {
namespace cuda {

constexpr int kApiVersion = 1;
constexpr const char* kEntryPoint = "nodeccl_cuda_api";
constexpr size_t kNcclIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES

struct CudaStatus {
  int code = 0;  // nodeccl::ErrorCode
  char message[1024] = {0};
};

// Codecs of encode/decode. Blockwise codecs keep one float32 scale per `block` elements.
enum class Codec : int {
  kFloat16 = 0,   // dst: uint16 bits, round to nearest even (as cpp/common/half.h)
  kBFloat16 = 1,  // dst: uint16 bits, round to nearest even
  kInt8 = 2,      // dst: int8, scale = absmax / 127 per block, round to nearest even
  kSign1 = 3,     // dst: uint32 words of sign bits (1 = negative), scale = mean |x| per block
};

// The collectives of ncclRun. Counts are per rank (NCCL's convention): allGather's `count` is
// what each rank contributes, reduceScatter's what each rank receives.
enum class NcclOp : int {
  kAllReduce = 0, kBroadcast, kReduce, kAllGather, kReduceScatter, kSend, kRecv,
};

struct NcclCall {
  NcclOp op = NcclOp::kAllReduce;
  const void* send = nullptr;
  void* recv = nullptr;
  size_t count = 0;
  int dtype = 0;     // nodeccl::DataType
  int reduceOp = 0;  // nodeccl::ReduceOp
  int peer = 0;      // root (broadcast, reduce) or peer (send, recv)
  double timeoutMs = 0;
};

struct Api {
  int version;
  size_t size;  // sizeof(Api) as the plugin was built

  // ---- devices and memory -------------------------------------------------------------------
  // Number of visible devices; false (with the CUDA error's name) when there is no driver.
  bool (*deviceCount)(int* count, CudaStatus* st);
  // "NVIDIA H200, compute 9.0, 139 GiB".
  bool (*deviceDescribe)(int device, char* out, size_t outLen, CudaStatus* st);
  bool (*alloc)(int device, size_t bytes, void** out, CudaStatus* st);
  bool (*free)(int device, void* ptr, CudaStatus* st);
  bool (*zero)(int device, void* ptr, size_t bytes, CudaStatus* st);
  // Host <-> device through pinned staging buffers, double-buffered; synchronous on return.
  bool (*toDevice)(int device, void* dst, const void* src, size_t bytes, CudaStatus* st);
  bool (*toHost)(int device, void* dst, const void* src, size_t bytes, CudaStatus* st);
  bool (*synchronize)(int device, CudaStatus* st);

  // ---- fused optimizers: one launch over every tensor (pointers are device pointers) -------
  bool (*sgdStep)(int device, const optim::SgdOptions* o, const optim::ParamList* list,
                  float* const* momentumBuffers, CudaStatus* st);
  bool (*rmspropStep)(int device, const optim::RmspropOptions* o, const optim::ParamList* list,
                      float* const* squareAvgs, float* const* momentumBuffers,
                      float* const* gradAvgs, CudaStatus* st);
  bool (*adamStep)(int device, const optim::AdamOptions* o, const optim::ParamList* list,
                   float* const* expAvgs, float* const* expAvgSqs, float* const* maxExpAvgSqs,
                   CudaStatus* st);

  // ---- codecs and reductions (device pointers) ------------------------------------------------
  bool (*encode)(int device, int codec, const float* src, size_t count, size_t block, void* dst,
                 float* scales, CudaStatus* st);
  bool (*decode)(int device, int codec, const void* src, const float* scales, size_t count,
                 size_t block, float* dst, CudaStatus* st);
  bool (*reduceInto)(int device, void* dst, const void* src, size_t count, int dtype, int op,
                     CudaStatus* st);

  // ---- NCCL ---------------------------------------------------------------------------------
  // Loads libnccl.so.2 once (`path` empty: NODECCL_NCCL_LIB, then the usual places); fills the
  // version (e.g. 22005 for 2.20.5) and the file it came from. False says why (code kIo).
  bool (*ncclLoad)(int* version, char* loadedFrom, size_t len, CudaStatus* st);
  bool (*ncclUniqueId)(uint8_t* out, CudaStatus* st);  // kNcclIdBytes bytes
  // Blocks until all `size` ranks have called it with the same id.
  bool (*ncclInit)(int device, int rank, int size, const uint8_t* id, void** comm,
                   CudaStatus* st);
  // Enqueues one operation and waits for it, polling NCCL's asynchronous error; on an error or
  // the timeout the communicator is aborted (later calls fail with kAborted).
  bool (*ncclRun)(void* comm, const NcclCall* call, CudaStatus* st);
  bool (*ncclAbort)(void* comm, const char* reason, CudaStatus* st);
  bool (*ncclDestroy)(void* comm, CudaStatus* st);  // frees `comm` (aborted or not)
};

}  // namespace cuda
}  // namespace nodeccl

// The plugin's only exported symbol; null when `version` is not the plugin's.
extern "C" const nodeccl::cuda::Api* nodeccl_cuda_api(int version);
