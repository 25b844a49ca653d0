// SPDX-License-Identifier: Apache-2.0
// The MPI library, loaded at run time with dlopen so that nodeccl builds and runs without MPI:
// the few MPI types, constants and functions the MPI backend calls, declared here from the MPI
// standard and Open MPI's ABI instead of including mpi.h.
//
// Open MPI (4.x, 5.x) makes every handle a pointer to an object the library exports
// (MPI_COMM_WORLD is &ompi_mpi_comm_world, MPI_FLOAT is &ompi_mpi_float, ...), so a handle is
// the address dlsym returns. MPICH and its derivatives (Intel MPI, MVAPICH) use integer handles
// and a different MPI_Status: LIMITATION: only Open MPI's ABI is supported; loading another
// MPI throws kInvalidArgument naming the library found (see loadMpi).
#pragma once

#include <string>

namespace nodeccl {
namespace mpi {

// Open MPI's handles: opaque pointers.
using Comm = void*;
using Datatype = void*;
using Op = void*;
using Request = void*;
using Errhandler = void*;
struct Status;  // only ever passed as MPI_STATUS_IGNORE (a null pointer in Open MPI)

constexpr int kSuccess = 0;
constexpr int kThreadSerialized = 2, kThreadMultiple = 3;  // MPI_THREAD_*, same in every MPI
constexpr int kMaxVersionString = 8192;  // >= MPI_MAX_LIBRARY_VERSION_STRING of any MPI

// The functions nodeccl calls, with the MPI standard's C signatures (handles as above).
struct Api {
  int (*Initialized)(int*);
  int (*Finalized)(int*);
  int (*Init_thread)(int*, char***, int, int*);
  int (*Finalize)();
  int (*Comm_rank)(Comm, int*);
  int (*Comm_size)(Comm, int*);
  int (*Comm_set_errhandler)(Comm, Errhandler);
  int (*Get_library_version)(char*, int*);
  int (*Error_string)(int, char*, int*);
  int (*Test)(Request*, int*, Status*);
  int (*Cancel)(Request*);
  int (*Iallreduce)(const void*, void*, int, Datatype, Op, Comm, Request*);
  int (*Ibcast)(void*, int, Datatype, int, Comm, Request*);
  int (*Ireduce)(const void*, void*, int, Datatype, Op, int, Comm, Request*);
  int (*Iallgather)(const void*, int, Datatype, void*, int, Datatype, Comm, Request*);
  int (*Ireduce_scatter_block)(const void*, void*, int, Datatype, Op, Comm, Request*);
  int (*Ibarrier)(Comm, Request*);
  int (*Isend)(const void*, int, Datatype, int, int, Comm, Request*);
  int (*Irecv)(void*, int, Datatype, int, int, Comm, Request*);
  int (*Ialltoallv)(const void*, const int*, const int*, Datatype, void*, const int*,
                    const int*, Datatype, Comm, Request*);
  int (*Igather)(const void*, int, Datatype, void*, int, Datatype, int, Comm, Request*);
  int (*Iscatter)(const void*, int, Datatype, void*, int, Datatype, int, Comm, Request*);
};

// The predefined handles nodeccl uses: addresses of Open MPI's exported objects.
struct Handles {
  Comm world;
  Datatype float32, float64, int32, int8, uint8, byte;
  Op sum, prod, min, max;
  Errhandler errorsReturn;
};

// A loaded MPI library. Never unloaded: MPI cannot be re-initialized within a process.
struct Library {
  std::string path;     // what dlopen was given
  std::string version;  // MPI_Get_library_version, first line
  Api api{};
  Handles h{};
};

// Loads `path`, or when it is empty NODECCL_MPI_LIBRARY, else the first of libmpi.so.40,
// libmpi.so, libmpi.so.12 that dlopen finds, with RTLD_NOW | RTLD_GLOBAL (Open MPI's plugins
// resolve their symbols against libmpi). Does not initialize MPI. Throws kInvalidArgument
// naming what was tried and what to install when nothing loads, and naming the library when it
// is not Open MPI or lacks a function.
Library loadMpi(const std::string& path = "");

}  // namespace mpi
}  // namespace nodeccl
