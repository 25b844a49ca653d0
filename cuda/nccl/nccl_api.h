// SPDX-License-Identifier: Apache-2.0
// The part of NCCL's C API that nodeccl calls, declared here from NVIDIA's public API reference
// (NCCL ships no Debian package, so there is no nccl.h to include), and the table of function
// pointers the loader fills from libnccl.so.2. Enum values are NCCL's documented ones, stable
// since 2.10 (bfloat16 and ncclAvg), the oldest release nodeccl accepts.
#pragma once

#include <cstddef>
#include <string>

namespace nodeccl {
namespace nccl {

using ncclComm_t = struct ncclComm*;
using cudaStream_t = struct CUstream_st*;

struct ncclUniqueId {
  char internal[128];  // NCCL_UNIQUE_ID_BYTES
};

enum ncclResult_t : int {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,  // 2.13+: a peer failed or went away
  ncclInProgress = 7,   // 2.14+: non-blocking communicators only
};

enum ncclDataType_t : int {
  ncclInt8 = 0, ncclUint8 = 1, ncclInt32 = 2, ncclUint32 = 3, ncclInt64 = 4, ncclUint64 = 5,
  ncclFloat16 = 6, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9,
};

enum ncclRedOp_t : int { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 };

// The oldest NCCL accepted: 2.10.0 (ncclGetVersion's code: major*10000 + minor*100 + patch
// since 2.9; major*1000 + minor*100 + patch before).
constexpr int kMinVersionCode = 21000;

struct Api {
  ncclResult_t (*getVersion)(int* version);
  ncclResult_t (*getUniqueId)(ncclUniqueId* id);
  ncclResult_t (*commInitRank)(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank);
  ncclResult_t (*commDestroy)(ncclComm_t comm);
  ncclResult_t (*commAbort)(ncclComm_t comm);
  ncclResult_t (*commGetAsyncError)(ncclComm_t comm, ncclResult_t* asyncError);
  const char* (*getErrorString)(ncclResult_t result);
  const char* (*getLastError)(ncclComm_t comm);  // 2.13+; may be null
  ncclResult_t (*allReduce)(const void* send, void* recv, size_t count, ncclDataType_t dtype,
                            ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
  ncclResult_t (*broadcast)(const void* send, void* recv, size_t count, ncclDataType_t dtype,
                            int root, ncclComm_t comm, cudaStream_t stream);
  ncclResult_t (*reduce)(const void* send, void* recv, size_t count, ncclDataType_t dtype,
                         ncclRedOp_t op, int root, ncclComm_t comm, cudaStream_t stream);
  ncclResult_t (*allGather)(const void* send, void* recv, size_t sendCount, ncclDataType_t dtype,
                            ncclComm_t comm, cudaStream_t stream);
  ncclResult_t (*reduceScatter)(const void* send, void* recv, size_t recvCount,
                                ncclDataType_t dtype, ncclRedOp_t op, ncclComm_t comm,
                                cudaStream_t stream);
  ncclResult_t (*send)(const void* send, size_t count, ncclDataType_t dtype, int peer,
                       ncclComm_t comm, cudaStream_t stream);
  ncclResult_t (*recv)(void* recv, size_t count, ncclDataType_t dtype, int peer,
                       ncclComm_t comm, cudaStream_t stream);
  ncclResult_t (*groupStart)();
  ncclResult_t (*groupEnd)();

  int version = 0;         // ncclGetVersion's code
  std::string loadedFrom;  // the path dlopen succeeded with
};

// Loads libnccl once per process and returns its table. The path: NODECCL_NCCL_LIB when set
// (only that), else libnccl.so.2 on the loader's search path, then CUDA's and pip's usual
// folders. Throws kIo listing every path tried and why each failed, or naming the missing
// symbol, or the version found when it is older than 2.10. A failure is remembered.
const Api& load();

// "2.20.5" from a version code.
std::string versionString(int code);

}  // namespace nccl
}  // namespace nodeccl
