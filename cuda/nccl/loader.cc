// SPDX-License-Identifier: Apache-2.0
// Finds and loads libnccl.so.2 with dlopen, resolves the functions of nccl_api.h and checks the
// version. Runs once per process (later calls return the same table or the same error).
#include <dlfcn.h>
#include <glob.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "common/error.h"
#include "common/log.h"
#include "nccl/nccl_api.h"

namespace nodeccl {
namespace nccl {
namespace {

// Where NCCL usually lives: the system, CUDA's folder, conda, and pip's nvidia-nccl wheels.
std::vector<std::string> candidates() {
  const char* env = std::getenv("NODECCL_NCCL_LIB");
  if (env != nullptr && *env != '\0') return {env};
  std::vector<std::string> out = {"libnccl.so.2", "/usr/lib/x86_64-linux-gnu/libnccl.so.2",
                                  "/usr/local/cuda/lib64/libnccl.so.2"};
  if (const char* conda = std::getenv("CONDA_PREFIX")) {
    out.push_back(std::string(conda) + "/lib/libnccl.so.2");
  }
  std::vector<std::string> patterns = {
      "/usr/local/lib/python3*/*-packages/nvidia/nccl/lib/libnccl.so.2",
      "/usr/lib/python3*/*-packages/nvidia/nccl/lib/libnccl.so.2",
      "/opt/conda/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2"};
  for (const char* var : {"VIRTUAL_ENV", "HOME"}) {
    if (const char* v = std::getenv(var)) {
      std::string prefix = std::string(v) + (var[0] == 'H' ? "/.local" : "");
      patterns.push_back(prefix + "/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2");
    }
  }
  for (const std::string& p : patterns) {
    glob_t g{};
    if (glob(p.c_str(), 0, nullptr, &g) == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
    }
    globfree(&g);
  }
  return out;
}

template <typename F>
void resolve(void* lib, const std::string& path, const char* name, F*& out, bool required) {
  out = reinterpret_cast<F*>(dlsym(lib, name));
  if (out == nullptr && required) {
    throw Error(ErrorCode::kIo,
                strcat("NCCL at ", path, " has no ", name, "; nodeccl needs NCCL 2.10 or newer ",
                       "(pip install nvidia-nccl-cu12, or point NODECCL_NCCL_LIB at another "
                       "libnccl.so.2)"));
  }
}

Api loadOnce() {
  // Open the first candidate that loads; remember why the others did not.
  void* lib = nullptr;
  std::string path, tried;
  for (const std::string& c : candidates()) {
    lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib != nullptr) {
      path = c;
      break;
    }
    const char* why = dlerror();
    tried += strcat("\n  ", c, ": ", why ? why : "not found");
  }
  if (lib == nullptr) {
    throw Error(ErrorCode::kIo,
                strcat("could not load NCCL (libnccl.so.2); tried:", tried,
                       "\nInstall it (pip install nvidia-nccl-cu12, or NVIDIA's libnccl2 "
                       "package) or set NODECCL_NCCL_LIB to its path"));
  }

  Api api;
  api.loadedFrom = path;
  resolve(lib, path, "ncclGetVersion", api.getVersion, true);
  int code = 0;
  if (api.getVersion(&code) != ncclSuccess || code < kMinVersionCode) {
    dlclose(lib);
    throw Error(ErrorCode::kIo,
                strcat("NCCL at ", path, " is version ", versionString(code), " (code ", code,
                       "); nodeccl needs 2.10 or newer (bfloat16 and avg); install a newer "
                       "NCCL or set NODECCL_NCCL_LIB to one"));
  }
  api.version = code;
  resolve(lib, path, "ncclGetUniqueId", api.getUniqueId, true);
  resolve(lib, path, "ncclCommInitRank", api.commInitRank, true);
  resolve(lib, path, "ncclCommDestroy", api.commDestroy, true);
  resolve(lib, path, "ncclCommAbort", api.commAbort, true);
  resolve(lib, path, "ncclCommGetAsyncError", api.commGetAsyncError, true);
  resolve(lib, path, "ncclGetErrorString", api.getErrorString, true);
  resolve(lib, path, "ncclGetLastError", api.getLastError, false);
  resolve(lib, path, "ncclAllReduce", api.allReduce, true);
  resolve(lib, path, "ncclBroadcast", api.broadcast, true);
  resolve(lib, path, "ncclReduce", api.reduce, true);
  resolve(lib, path, "ncclAllGather", api.allGather, true);
  resolve(lib, path, "ncclReduceScatter", api.reduceScatter, true);
  resolve(lib, path, "ncclSend", api.send, true);
  resolve(lib, path, "ncclRecv", api.recv, true);
  resolve(lib, path, "ncclGroupStart", api.groupStart, true);
  resolve(lib, path, "ncclGroupEnd", api.groupEnd, true);
  return api;  // the library stays loaded for the life of the process
}

}  // namespace

std::string versionString(int code) {
  if (code >= 10000) return strcat(code / 10000, ".", code % 10000 / 100, ".", code % 100);
  return strcat(code / 1000, ".", code % 1000 / 100, ".", code % 100);
}

const Api& load() {
  static std::once_flag once;
  static Api api;
  static std::string failure;
  std::call_once(once, [] {
    try {
      api = loadOnce();
      NODECCL_INFO("nccl", -1, 0, "loaded NCCL ", versionString(api.version), " from ",
                   api.loadedFrom);
    } catch (const Error& e) {
      failure = e.what();
    }
  });
  if (!failure.empty()) throw Error(ErrorCode::kIo, failure);
  return api;
}

}  // namespace nccl
}  // namespace nodeccl
