// SPDX-License-Identifier: Apache-2.0
// The MPI runtime of this process: one MPI_Init_thread, one MPI_Finalize at exit, one mutex
// around every MPI call, and the wait that polls a non-blocking request with MPI_Test so that
// nodeccl's timeouts and abort() still apply to operations that run inside MPI.
//
// Threading: nodeccl calls MPI from several threads (the init thread, each communicator's
// worker). It asks for MPI_THREAD_MULTIPLE and accepts MPI_THREAD_SERIALIZED; either way every
// call goes through callLocked(), so at most one thread is inside MPI at a time.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend/mpi/mpi_lib.h"

namespace nodeccl {
namespace mpi {

using Millis = std::chrono::milliseconds;
using Deadline = std::chrono::steady_clock::time_point;

// This process's view of MPI_COMM_WORLD, and which library and thread level serve it.
struct World {
  int rank = 0;
  int size = 1;
  int threadLevel = 0;  // MPI_THREAD_SERIALIZED (2) or MPI_THREAD_MULTIPLE (3)
  std::string library;  // path given to dlopen
  std::string version;  // MPI_Get_library_version, first line
};

// Loads libmpi and initializes MPI once per process (later calls return the same World, or
// rethrow the same error). Registers MPI_Finalize to run at process exit, as mpirun requires
// of every process that called MPI_Init. Throws kInvalidArgument when no usable library is
// found or it offers less than MPI_THREAD_SERIALIZED, kIo when MPI_Init_thread fails.
const World& initialize();

// True once initialize() succeeded.
bool initialized();

// The library initialize() loaded; throws kInvalidArgument when MPI is not initialized.
const Library& library();

// The process-wide MPI mutex, and `fn` run with it held.
std::mutex& mpiMutex();
template <typename F>
auto callLocked(F&& fn) -> decltype(fn()) {
  std::lock_guard<std::mutex> lock(mpiMutex());
  return fn();
}

// Throws kIo naming `what` and MPI's text for `rc` when rc is not MPI_SUCCESS.
void check(int rc, const std::string& what);

// An operation handed to MPI: its request and every buffer MPI may still read or write.
// When a wait gives up (timeout, abort) the request is still pending inside MPI, so the
// Inflight is kept alive to the end of the process (abandon) instead of freed under MPI.
struct Inflight {
  Request req = nullptr;
  std::vector<unsigned char> a, b;   // staging copies of the caller's buffers
  std::vector<int> counts, displs;   // argument arrays MPI may read until completion
};

// Why a wait stopped early: the text and code to throw, or an empty text to keep waiting.
struct StopReason {
  std::string text;
  int code = 0;  // an ErrorCode
};

// Polls `op`'s request with MPI_Test until it completes, `deadline` passes (kTimeout with
// `timeoutText`), or `stop` returns a reason (thrown with its code). Polls without sleeping for
// 20 ms, then backs off to sleeps of up to 1 ms (other ranks may share this CPU). On failure
// the request and its buffers are abandoned (see Inflight: `op` is then null); on success the
// caller keeps `op`.
void wait(std::unique_ptr<Inflight>& op, Deadline deadline, const std::string& timeoutText,
          const std::function<StopReason()>& stop);

// MPI_Bcast of a short text (below 4 KiB) from `root` of MPI_COMM_WORLD, bounded by `timeout`:
// the rendezvous uses it to give every rank rank 0's store address and the job token.
std::string broadcastText(const std::string& text, int root, Millis timeout);

}  // namespace mpi
}  // namespace nodeccl
