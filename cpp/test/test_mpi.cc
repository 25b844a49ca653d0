// SPDX-License-Identifier: Apache-2.0
// Tests of the MPI library loader (backend/mpi/mpi_lib.h) without initializing MPI (that needs
// mpirun; test/e2e/mpi.test.ts covers it): clear errors for a missing or non-MPI library, and
// every function and handle resolved from Open MPI when it is installed.
#include <dlfcn.h>

#include <cstdio>
#include <string>

#include "backend/mpi/mpi_collectives.h"
#include "backend/mpi/mpi_lib.h"
#include "common/error.h"
#include "test/harness.h"

using namespace nodeccl;

// A path that cannot exist: the error names it, the loader's reason and what to install.
NODECCL_TEST(mpi_missing_library_says_what_to_install) {
  EXPECT_THROWS_CODE(mpi::loadMpi("/nonexistent/libmpi.so.40"), ErrorCode::kInvalidArgument,
                     "apt-get install openmpi-bin libopenmpi-dev");
  EXPECT_THROWS_CODE(mpi::loadMpi("/nonexistent/libmpi.so.40"), ErrorCode::kInvalidArgument,
                     "/nonexistent/libmpi.so.40");
}

// A library that loads but is not Open MPI (libcrypto, which nodeccl links anyway) is refused
// with the LIMITATION and its name instead of being used with the wrong handles.
NODECCL_TEST(mpi_non_openmpi_library_is_refused_by_name) {
  EXPECT_THROWS_CODE(mpi::loadMpi("libcrypto.so.3"), ErrorCode::kInvalidArgument,
                     "LIMITATION: nodeccl's MPI backend supports Open MPI's ABI only, but "
                     "libcrypto.so.3");
}

// Open MPI, when installed (CI installs it): every function and predefined handle resolves.
NODECCL_TEST(mpi_openmpi_resolves_every_symbol) {
  void* probe = ::dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL);
  if (probe == nullptr) {
    std::printf("  skipped: libmpi.so.40 not found (apt-get install libopenmpi-dev)\n");
    return;
  }
  mpi::Library lib = mpi::loadMpi("libmpi.so.40");
  EXPECT_TRUE(lib.version.find("Open MPI") != std::string::npos);
  const void* fns[] = {reinterpret_cast<const void*>(lib.api.Init_thread),
                       reinterpret_cast<const void*>(lib.api.Iallreduce),
                       reinterpret_cast<const void*>(lib.api.Ialltoallv),
                       reinterpret_cast<const void*>(lib.api.Iscatter),
                       reinterpret_cast<const void*>(lib.api.Test)};
  for (const void* f : fns) EXPECT_TRUE(f != nullptr);
  const void* handles[] = {lib.h.world, lib.h.float32, lib.h.float64, lib.h.int32, lib.h.int8,
                           lib.h.uint8, lib.h.byte,    lib.h.sum,     lib.h.prod,  lib.h.min,
                           lib.h.max,   lib.h.errorsReturn};
  for (const void* h : handles) EXPECT_TRUE(h != nullptr);
  EXPECT_TRUE(lib.h.sum != lib.h.prod && lib.h.float32 != lib.h.float64);
}

// The backend option accepts native and mpi only, naming the variable that sets it.
NODECCL_TEST(mpi_unknown_backend_is_rejected) {
  CommOptions o;
  o.backend = "nccl";
  EXPECT_THROWS_CODE(mpi::attachBackend(o), ErrorCode::kInvalidArgument,
                     "NODECCL_BACKEND=auto|native|mpi");
  o.backend = "native";
  mpi::attachBackend(o);  // nothing to check, and MPI is not touched
}
