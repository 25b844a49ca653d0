// SPDX-License-Identifier: Apache-2.0
// MPI initialization and finalization, the MPI mutex, request polling and the text broadcast
// of the rendezvous (see mpi_runtime.h).
#include "backend/mpi/mpi_runtime.h"

#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/error.h"
#include "common/log.h"

namespace nodeccl {
namespace mpi {
namespace {

// The outcome of the one initialization: the library and world, or the error to rethrow.
struct State {
  std::mutex mu;
  bool tried = false;
  Library lib;
  World world;
  ErrorCode code = ErrorCode::kInternal;
  std::string error;
};

State& state() {
  static State* s = new State();  // never destroyed: atexit's finalize may still need it
  return *s;
}

// Set (under the MPI mutex) once MPI_Finalize ran: a worker still polling then stops instead
// of calling into a finalized MPI.
bool finalizedAtExit = false;

// Buffers of requests given up on (timeout, abort): MPI may still write them, so they live
// until the process ends.
std::vector<std::unique_ptr<Inflight>>& abandoned() {
  static auto* v = new std::vector<std::unique_ptr<Inflight>>();
  return *v;
}

// At exit: MPI_Finalize, which mpirun expects of every process that called MPI_Init. Requests
// abandoned after a timeout are left to MPI (the standard makes finalizing with them pending
// erroneous; Open MPI 4.1 finalizes regardless, which the timeout test checks).
void finalizeAtExit() {
  const Library& lib = state().lib;
  callLocked([&] {
    int done = 0;
    lib.api.Finalized(&done);
    if (!done) lib.api.Finalize();
    finalizedAtExit = true;
  });
}

// MPI_Init_thread (unless the application already initialized MPI), then the world's shape.
void initLocked(State& s) {
  s.lib = loadMpi();
  const Api& a = s.lib.api;
  int already = 0, provided = 0;
  check(a.Initialized(&already), "MPI_Initialized");
  if (!already) {
    int argc = 0;
    char** argv = nullptr;
    check(a.Init_thread(&argc, &argv, kThreadMultiple, &provided), "MPI_Init_thread");
    std::atexit(finalizeAtExit);
  } else {
    provided = kThreadSerialized;  // initialized by someone else: assume nothing better
  }
  // LIMITATION: nodeccl calls MPI from more than one thread (init, each worker), which needs
  // at least MPI_THREAD_SERIALIZED; a library that offers less cannot be used.
  if (provided < kThreadSerialized) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("LIMITATION: ", s.lib.path, " (", s.lib.version, ") provides MPI thread "
                       "level ", provided, " but nodeccl needs MPI_THREAD_SERIALIZED (2) or "
                       "MPI_THREAD_MULTIPLE (3); use an MPI built with thread support"));
  }
  // Errors come back as return codes (thrown as nodeccl errors) instead of aborting the job.
  check(a.Comm_set_errhandler(s.lib.h.world, s.lib.h.errorsReturn), "MPI_Comm_set_errhandler");
  check(a.Comm_rank(s.lib.h.world, &s.world.rank), "MPI_Comm_rank");
  check(a.Comm_size(s.lib.h.world, &s.world.size), "MPI_Comm_size");
  s.world.threadLevel = provided;
  s.world.library = s.lib.path;
  s.world.version = s.lib.version;
}

}  // namespace

std::mutex& mpiMutex() {
  static auto* mu = new std::mutex();  // never destroyed, for finalizeAtExit
  return *mu;
}

const World& initialize() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.tried) {
    s.tried = true;
    try {
      callLocked([&] { initLocked(s); });
      NODECCL_INFO("init", s.world.rank, s.world.size, "MPI initialized: ", s.world.version,
                   " from ", s.world.library, ", thread level ", s.world.threadLevel);
    } catch (const Error& e) {
      s.code = e.code();
      s.error = e.what();
    }
  }
  if (!s.error.empty()) throw Error(s.code, s.error);
  return s.world;
}

bool initialized() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.tried && s.error.empty();
}

const Library& library() {
  if (!initialized()) {
    throw Error(ErrorCode::kInvalidArgument, "MPI is not initialized: the MPI backend is set "
                "up by init() under mpirun (NODECCL_BACKEND=mpi)");
  }
  return state().lib;
}

void check(int rc, const std::string& what) {
  if (rc == kSuccess) return;
  std::string text = "unknown MPI error";
  const Library& lib = state().lib;
  if (lib.api.Error_string != nullptr) {
    std::vector<char> buf(kMaxVersionString + 1, '\0');
    int len = 0;
    if (lib.api.Error_string(rc, buf.data(), &len) == kSuccess) text = buf.data();
  }
  throw Error(ErrorCode::kIo, strcat(what, " failed with MPI error ", rc, " (", text, ")"));
}

void wait(std::unique_ptr<Inflight>& op, Deadline deadline, const std::string& timeoutText,
          const std::function<StopReason()>& stop) {
  const Api& a = state().lib.api;
  const auto start = std::chrono::steady_clock::now();
  auto backoff = std::chrono::microseconds(0);
  for (;;) {
    int done = 0;
    bool gone = false;
    callLocked([&] {
      gone = finalizedAtExit;
      if (!gone) check(a.Test(&op->req, &done, nullptr), "MPI_Test");
    });
    if (gone) {
      op.release();  // MPI is finalized; its buffers die with the process, which is exiting
      throw Error(ErrorCode::kAborted, "MPI was finalized: the process is exiting");
    }
    if (done) return;

    // Given up: keep the request's buffers alive for MPI, then throw.
    StopReason why = stop();
    bool late = std::chrono::steady_clock::now() >= deadline;
    if (!why.text.empty() || late) {
      callLocked([&] { abandoned().push_back(std::move(op)); });
      if (!why.text.empty()) throw Error(ErrorCode(why.code), why.text);
      throw Error(ErrorCode::kTimeout, timeoutText);
    }

    // MPI progresses only inside MPI calls, so poll without sleeping for the first 20 ms
    // (yielding, so ranks sharing a core let each other run), then sleep longer and longer, up
    // to 1 ms, for a collective some rank is late to.
    if (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(20)) {
      std::this_thread::yield();
      continue;
    }
    backoff = std::min(std::chrono::microseconds(1000), backoff + std::chrono::microseconds(20));
    std::this_thread::sleep_for(backoff);
  }
}

std::string broadcastText(const std::string& text, int root, Millis timeout) {
  constexpr size_t kMax = 4096;
  const World& w = initialize();
  if (w.rank == root && text.size() >= kMax) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("rank ", w.rank, ": MPI broadcast text of ", text.size(), " bytes; at "
                       "most ", kMax - 1, " fit"));
  }
  auto op = std::make_unique<Inflight>();
  op->a.assign(kMax, 0);
  if (w.rank == root) std::memcpy(op->a.data(), text.data(), text.size());
  const Library& lib = state().lib;
  callLocked([&] {
    check(lib.api.Ibcast(op->a.data(), int(kMax), lib.h.byte, root, lib.h.world, &op->req),
          "MPI_Ibcast");
  });
  wait(op, std::chrono::steady_clock::now() + timeout,
       strcat("rank ", w.rank, ": the MPI broadcast of the rendezvous address from rank ", root,
              " did not complete within ", timeout.count(), " ms; check that every rank of the "
              "mpirun job calls init()"),
       [] { return StopReason{}; });
  return std::string(reinterpret_cast<const char*>(op->a.data()));
}

}  // namespace mpi
}  // namespace nodeccl
