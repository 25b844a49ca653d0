// SPDX-License-Identifier: Apache-2.0
// Loads libmpi with dlopen and resolves the functions and predefined handles of mpi_lib.h.
#include "backend/mpi/mpi_lib.h"

#include <dlfcn.h>

#include <cstdlib>
#include <vector>

#include "common/error.h"

namespace nodeccl {
namespace mpi {
namespace {

const char* const kInstall =
    "install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev; "
    "RHEL/Fedora: dnf install openmpi) or set NODECCL_MPI_LIBRARY to the path of its libmpi.so";

[[noreturn]] void bad(const std::string& message) {
  throw Error(ErrorCode::kInvalidArgument, message);
}

// dlopen of the first candidate that loads; the dlerror of each one that did not goes to *why.
void* openFirst(const std::vector<std::string>& candidates, std::string* path, std::string* why) {
  for (const std::string& c : candidates) {
    void* handle = ::dlopen(c.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (handle != nullptr) {
      *path = c;
      return handle;
    }
    const char* e = ::dlerror();
    *why += strcat(why->empty() ? "" : "; ", e != nullptr ? e : c.c_str());
  }
  return nullptr;
}

// The library's own description (MPI_Get_library_version works before MPI_Init), first line.
std::string versionOf(void* handle) {
  auto fn = reinterpret_cast<int (*)(char*, int*)>(::dlsym(handle, "MPI_Get_library_version"));
  if (fn == nullptr) return "an MPI library without MPI_Get_library_version (MPI < 3.0)";
  std::vector<char> text(kMaxVersionString + 1, '\0');
  int len = 0;
  if (fn(text.data(), &len) != kSuccess) return "an MPI library";
  std::string v(text.data());
  return v.substr(0, v.find('\n'));
}

template <typename T>
void resolve(void* handle, const Library& lib, const char* name, T* out) {
  *out = reinterpret_cast<T>(::dlsym(handle, name));
  if (*out == nullptr) {
    bad(strcat(lib.path, " (", lib.version, ") has no ", name, "; nodeccl's MPI backend needs ",
               "an MPI-3 library: ", kInstall));
  }
}

void resolveApi(void* h, Library* lib) {
  Api& a = lib->api;
  resolve(h, *lib, "MPI_Initialized", &a.Initialized);
  resolve(h, *lib, "MPI_Finalized", &a.Finalized);
  resolve(h, *lib, "MPI_Init_thread", &a.Init_thread);
  resolve(h, *lib, "MPI_Finalize", &a.Finalize);
  resolve(h, *lib, "MPI_Comm_rank", &a.Comm_rank);
  resolve(h, *lib, "MPI_Comm_size", &a.Comm_size);
  resolve(h, *lib, "MPI_Comm_set_errhandler", &a.Comm_set_errhandler);
  resolve(h, *lib, "MPI_Get_library_version", &a.Get_library_version);
  resolve(h, *lib, "MPI_Error_string", &a.Error_string);
  resolve(h, *lib, "MPI_Test", &a.Test);
  resolve(h, *lib, "MPI_Cancel", &a.Cancel);
  resolve(h, *lib, "MPI_Iallreduce", &a.Iallreduce);
  resolve(h, *lib, "MPI_Ibcast", &a.Ibcast);
  resolve(h, *lib, "MPI_Ireduce", &a.Ireduce);
  resolve(h, *lib, "MPI_Iallgather", &a.Iallgather);
  resolve(h, *lib, "MPI_Ireduce_scatter_block", &a.Ireduce_scatter_block);
  resolve(h, *lib, "MPI_Ibarrier", &a.Ibarrier);
  resolve(h, *lib, "MPI_Isend", &a.Isend);
  resolve(h, *lib, "MPI_Irecv", &a.Irecv);
  resolve(h, *lib, "MPI_Ialltoallv", &a.Ialltoallv);
  resolve(h, *lib, "MPI_Igather", &a.Igather);
  resolve(h, *lib, "MPI_Iscatter", &a.Iscatter);
}

// Open MPI's predefined handles are its exported objects; MPI_INT8_T is ompi_mpi_int8_t but
// MPI_SIGNED_CHAR has the same size and exists in every version.
void resolveHandles(void* h, Library* lib) {
  Handles& o = lib->h;
  resolve(h, *lib, "ompi_mpi_comm_world", &o.world);
  resolve(h, *lib, "ompi_mpi_float", &o.float32);
  resolve(h, *lib, "ompi_mpi_double", &o.float64);
  resolve(h, *lib, "ompi_mpi_int", &o.int32);
  resolve(h, *lib, "ompi_mpi_signed_char", &o.int8);
  resolve(h, *lib, "ompi_mpi_unsigned_char", &o.uint8);
  resolve(h, *lib, "ompi_mpi_byte", &o.byte);
  resolve(h, *lib, "ompi_mpi_op_sum", &o.sum);
  resolve(h, *lib, "ompi_mpi_op_prod", &o.prod);
  resolve(h, *lib, "ompi_mpi_op_min", &o.min);
  resolve(h, *lib, "ompi_mpi_op_max", &o.max);
  resolve(h, *lib, "ompi_mpi_errors_return", &o.errorsReturn);
}

}  // namespace

Library loadMpi(const std::string& path) {
  std::vector<std::string> candidates;
  const char* env = std::getenv("NODECCL_MPI_LIBRARY");
  if (!path.empty()) {
    candidates = {path};
  } else if (env != nullptr && *env != '\0') {
    candidates = {env};
  } else {
    candidates = {"libmpi.so.40", "libmpi.so", "libmpi.so.12"};
  }

  // Nothing loads: say what was tried, why each failed, and what to install.
  Library lib;
  std::string why;
  void* handle = openFirst(candidates, &lib.path, &why);
  if (handle == nullptr) {
    std::string tried = candidates[0];
    for (size_t i = 1; i < candidates.size(); ++i) tried += ", " + candidates[i];
    const bool fromEnv = path.empty() && env != nullptr && *env != '\0';
    bad(strcat("no MPI library could be loaded (tried ", tried,
               fromEnv ? " from NODECCL_MPI_LIBRARY" : "", ": ", why, "); ", kInstall));
  }
  lib.version = versionOf(handle);

  // LIMITATION: MPICH-style integer handles are not supported (see mpi_lib.h); say which MPI
  // was found rather than crash on a handle of the wrong kind.
  if (::dlsym(handle, "ompi_mpi_comm_world") == nullptr) {
    bad(strcat("LIMITATION: nodeccl's MPI backend supports Open MPI's ABI only, but ", lib.path,
               " is ", lib.version, " (integer handles, as MPICH, Intel MPI and MVAPICH use); "
               "run under Open MPI's mpirun with NODECCL_MPI_LIBRARY pointing at its libmpi.so, "
               "or use the native backend with MASTER_ADDR set"));
  }
  resolveApi(handle, &lib);
  resolveHandles(handle, &lib);
  return lib;
}

}  // namespace mpi
}  // namespace nodeccl
