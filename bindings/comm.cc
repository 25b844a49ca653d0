// SPDX-License-Identifier: Apache-2.0
// The JS Communicator class. Each collective checks its arguments on the JS thread, keeps the
// typed arrays referenced, and queues the core call on the communicator's own worker thread
// (core Executor), so operations run in call order and never block the JS thread. Completions
// come back through one thread-safe function, which settles the Promise on the JS thread.
//
// Collectives over shared memory take a shortcut: when the call picks its direct algorithm
// (coll/direct.h: allReduce, allGather, reduceScatter, broadcast, barrier), or its staged one
// (coll/staged.h) for at most fastMaxBytes() (4 MiB), and nothing is queued, it starts the
// operation and drives it for at most fastSpin() (1 ms) on the JS thread; if the peers were
// all there it returns an already resolved Promise (microseconds instead of a thread hop there
// and back, 10-300 us here, the most when the threads were asleep), else the worker finishes
// the same operation. Call order is kept because the shortcut is taken only with an empty
// queue. Never over TCP or the hybrid shm+tcp transport (no non-blocking halves there).
// LIMITATION: a staged call taken this way does its copies and reduction on the JS thread
// (about 60 us per MiB of all-reduce here), so other JS work waits that long; set
// NODECCL_FAST_MAX_BYTES=0 to keep every call of more than the direct sizes on the worker.
#include <sched.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "async.h"
#include "coll/collectives.h"
#include "coll/direct.h"
#include "coll/staged.h"
#include "comm/communicator.h"
#include "comm/executor.h"
#include "modules.h"

namespace nodeccl_binding {
namespace {

using nodeccl::Communicator;
using nodeccl::DataType;
using nodeccl::ErrorCode;
using nodeccl::Millis;
using nodeccl::ReduceOp;

// How long a small collective may spin on the JS thread waiting for its peers' messages before
// the worker thread takes over. It must outlast a peer's thread hop (100-300 us here): a peer
// that fell back to its worker comes back that late, and a shorter spin would then miss it on
// every call and the ranks would never fall back into step.
// NODECCL_FAST_SPIN_US overrides it (0 disables the shortcut).
std::chrono::microseconds fastSpin() {
  static const std::chrono::microseconds spin = [] {
    const char* v = std::getenv("NODECCL_FAST_SPIN_US");
    long us = v != nullptr && *v != '\0' ? std::strtol(v, nullptr, 10) : 1000;
    return std::chrono::microseconds(std::max(0L, std::min(us, 100000L)));
  }();
  return spin;
}

// The largest staged call (bytes per rank) that the shortcut runs on the JS thread:
// NODECCL_FAST_MAX_BYTES, default 4 MiB (about a quarter of a millisecond of copying here).
size_t fastMaxBytes() {
  static const size_t max = [] {
    const char* v = std::getenv("NODECCL_FAST_MAX_BYTES");
    long long b = v != nullptr && *v != '\0' ? std::strtoll(v, nullptr, 10) : 4LL << 20;
    return static_cast<size_t>(std::max(0LL, b));
  }();
  return max;
}

// One operation in flight: its Promise, the JS values it uses, and its outcome.
struct Completion {
  Napi::Promise::Deferred deferred;
  std::vector<Napi::Reference<Napi::Value>> refs;
  bool failed = false;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

class CommWrap;
void settle(Napi::Env env, Napi::Function, CommWrap* self, Completion* c);
using Tsfn = Napi::TypedThreadSafeFunction<CommWrap, Completion, settle>;

// ---- argument readers (JS thread) ----------------------------------------------------------

int intArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) {
    throw makeError(info.Env(), ErrorCode::kInvalidArgument,
                    std::string(what) + " must be an integer");
  }
  return info[i].As<Napi::Number>().Int32Value();
}

Millis timeoutArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) {
    throw makeError(info.Env(), ErrorCode::kInvalidArgument, "timeoutMs must be a number");
  }
  double ms = info[i].As<Napi::Number>().DoubleValue();
  if (!(ms >= 0) || ms > 1e12) {
    throw makeRangeError(info.Env(), "timeoutMs must be between 0 and 1e12, got " +
                                         std::to_string(ms));
  }
  return Millis(static_cast<int64_t>(ms));
}

DataType dtypeArg(const Napi::CallbackInfo& info, size_t i) {
  int code = intArg(info, i, "dtype");
  if (code < 0 || code >= nodeccl::kNumDataTypes) {
    throw makeRangeError(info.Env(), "dtype code " + std::to_string(code) + " is unknown");
  }
  return static_cast<DataType>(code);
}

ReduceOp opArg(const Napi::CallbackInfo& info, size_t i) {
  int code = intArg(info, i, "op");
  if (code < 0 || code >= nodeccl::kNumReduceOps) {
    throw makeRangeError(info.Env(), "reduce op code " + std::to_string(code) + " is unknown");
  }
  return static_cast<ReduceOp>(code);
}

size_t countArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) {
    throw makeError(info.Env(), ErrorCode::kInvalidArgument, "count must be an integer");
  }
  double n = info[i].As<Napi::Number>().DoubleValue();
  if (!(n >= 0) || n != static_cast<double>(static_cast<size_t>(n))) {
    throw makeRangeError(info.Env(), "count must be a non-negative integer, got " +
                                         std::to_string(n));
  }
  return static_cast<size_t>(n);
}

// The typed array at info[i], checked to hold at least count elements of dtype.
void* bufferArg(const Napi::CallbackInfo& info, size_t i, const char* what, size_t count,
                DataType dtype) {
  ByteView view = typedArrayView(info[i], what);
  size_t need = count * nodeccl::dtypeSize(dtype);
  if (view.bytes < need) {
    throw makeRangeError(info.Env(), std::string(what) + " holds " + std::to_string(view.bytes) +
                                         " bytes but " + std::to_string(count) + " " +
                                         nodeccl::dtypeName(dtype) + " elements need " +
                                         std::to_string(need));
  }
  return view.data;
}

// A JS array of non-negative integer counts at info[i], `n` of them.
std::vector<size_t> countsArg(const Napi::CallbackInfo& info, size_t i, const char* what,
                              size_t n) {
  if (!info[i].IsArray() || info[i].As<Napi::Array>().Length() != n) {
    throw makeError(info.Env(), ErrorCode::kInvalidArgument,
                    std::string(what) + " must be an array of " + std::to_string(n) + " counts");
  }
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<size_t> out(n);
  for (uint32_t k = 0; k < n; ++k) {
    Napi::Value v = a.Get(k);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0) || d != static_cast<double>(static_cast<size_t>(d))) {
      throw makeRangeError(info.Env(), std::string(what) + "[" + std::to_string(k) +
                                           "] must be a non-negative integer");
    }
    out[k] = static_cast<size_t>(d);
  }
  return out;
}

// The typed array at info[i], or null when it is null/undefined (a buffer only the root uses;
// a null is then not kept referenced: references hold objects only).
void* optionalBufferArg(const Napi::CallbackInfo& info, size_t i, const char* what,
                        size_t count, DataType dtype) {
  if (info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  return bufferArg(info, i, what, count, dtype);
}

// ---- the wrapped communicator ---------------------------------------------------------------

class CommWrap : public Napi::ObjectWrap<CommWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Communicator",
                       {InstanceMethod("rank", &CommWrap::Rank),
                        InstanceMethod("size", &CommWrap::Size),
                        InstanceMethod("topology", &CommWrap::Topology),
                        InstanceMethod("allocShared", &CommWrap::AllocShared),
                        InstanceMethod("allReduce", &CommWrap::AllReduce),
                        InstanceMethod("broadcast", &CommWrap::Broadcast),
                        InstanceMethod("reduce", &CommWrap::Reduce),
                        InstanceMethod("allGather", &CommWrap::AllGather),
                        InstanceMethod("reduceScatter", &CommWrap::ReduceScatter),
                        InstanceMethod("barrier", &CommWrap::Barrier),
                        InstanceMethod("send", &CommWrap::Send),
                        InstanceMethod("recv", &CommWrap::Recv),
                        InstanceMethod("allToAll", &CommWrap::AllToAll),
                        InstanceMethod("gather", &CommWrap::Gather),
                        InstanceMethod("scatter", &CommWrap::Scatter),
                        InstanceMethod("batchSendRecv", &CommWrap::BatchSendRecv),
                        InstanceMethod("abort", &CommWrap::Abort),
                        InstanceMethod("destroy", &CommWrap::Destroy)});
  }

  explicit CommWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CommWrap>(info) {}

  ~CommWrap() override {
    if (attached_) napi_remove_env_cleanup_hook(Env(), &CommWrap::onEnvCleanup, this);
    teardown("the communicator was garbage-collected");
  }

  // Called once, on the JS thread, by createCommunicator's completion.
  void attach(Napi::Env env, std::shared_ptr<nodeccl::Store> store,
              std::shared_ptr<Communicator> comm) {
    store_ = std::move(store);
    comm_ = std::move(comm);
    executor_ = std::make_unique<nodeccl::Executor>();
    tsfn_ = Tsfn::New(env, "nodeccl-communicator", 0, 1, this);
    tsfn_.Unref(env);  // an idle communicator must not keep the process alive
    napi_add_env_cleanup_hook(env, &CommWrap::onEnvCleanup, this);
    attached_ = true;
    // The shortcut's spin yields at once when this host's ranks outnumber its cores (with
    // shared memory every rank is on this host), else after 50 us (see tryFast).
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    int cores = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
    yieldAfter_ = comm_->size() > cores ? std::chrono::microseconds(3)
                                        : std::chrono::microseconds(50);
  }

  // Settles one completion on the JS thread.
  void finish(Napi::Env env, Completion* c) {
    if (c->failed) {
      c->deferred.Reject(makeError(env, c->code, c->message).Value());
    } else {
      c->deferred.Resolve(env.Undefined());
    }
    delete c;
    if (--pending_ == 0) {
      tsfn_.Unref(env);
      Unref();
      // After destroy() has run, free the worker thread and descriptors now rather than at
      // garbage collection (nothing can be queued any more; the worker is idle).
      if (destroyed_) teardown("the communicator was destroyed");
    }
  }

 private:
  using Op = std::function<void(Communicator&)>;

  Napi::Value Rank(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), comm_ ? comm_->rank() : -1);
  }
  Napi::Value Size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), comm_ ? comm_->size() : 0);
  }
  // { transport, hostOf: [host index of every rank] }, fixed at init.
  Napi::Value Topology(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("transport", comm_ ? comm_->transportName() : "none");
    const int n = comm_ ? comm_->size() : 0;
    Napi::Array hosts = Napi::Array::New(env, n);
    for (int r = 0; r < n; ++r) hosts.Set(static_cast<uint32_t>(r), comm_->hostOf(r));
    o.Set("hostOf", hosts);
    return o;
  }

  // allocShared(bytes): a zero-filled ArrayBuffer in this rank's shared heap
  // (transport/shm/shared_heap.h), which the peers' collectives read and write in place; or a
  // string saying why there is none (lib/comm.ts then falls back to a plain array). The
  // buffer keeps the heap mapped, so it outlives destroy().
  Napi::Value AllocShared(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber() || !(info[0].As<Napi::Number>().DoubleValue() >= 0)) {
      throw makeError(env, ErrorCode::kInvalidArgument, "allocShared: bytes must be >= 0");
    }
    const auto bytes = static_cast<size_t>(info[0].As<Napi::Number>().DoubleValue());
    nodeccl::ShmTransport* shm = comm_ && !destroyed_ && !torndown_ ? comm_->shm() : nullptr;
    std::shared_ptr<nodeccl::SharedHeap> heap = shm ? shm->heap() : nullptr;
    if (!heap) {
      // Where the transport set up without windows, say why (a full /dev/shm, or a
      // NODECCL_SHM_WINDOW_MB under the 4 MiB a window needs).
      const std::string noWindows =
          shm != nullptr && !shm->windowsWhy().empty() ? ": " + shm->windowsWhy() : "";
      return Napi::String::New(
          env, std::string("no shared heap on this communicator (transport ") +
                   (comm_ && !destroyed_ ? comm_->transportName() : "none, destroyed") +
                   "; shared arrays need every rank on one host with shared windows" +
                   noWindows + ")");
    }
    std::string why;
    void* p = heap->allocate(bytes, &why);
    if (p == nullptr) return Napi::String::New(env, why);
    using Hold = std::shared_ptr<nodeccl::SharedHeap>;
    const auto pages = static_cast<int64_t>(nodeccl::SharedHeap::pageBytes(bytes));
    auto* hold = new Hold(heap);
    Napi::ArrayBuffer buffer;
    try {
      buffer = Napi::ArrayBuffer::New(
          env, p, bytes,
          [pages](Napi::Env e, void* data, Hold* h) {
            (*h)->release(data);
            delete h;
            Napi::MemoryManagement::AdjustExternalMemory(e, -pages);
          },
          hold);
    } catch (const Napi::Error& e) {
      // Runtimes that forbid external buffers (Electron's V8 sandbox) throw here.
      delete hold;
      heap->release(p);
      return Napi::String::New(env, std::string("this runtime refuses external ArrayBuffers (") +
                                        e.Message() + ")");
    }
    Napi::MemoryManagement::AdjustExternalMemory(env, pages);
    return buffer;
  }

  // Queues `op` on the worker thread; the Promise settles when it has run.
  Napi::Value enqueue(Napi::Env env, Op op, std::vector<Napi::Value> keep, bool internal = false) {
    if (!attached_ || torndown_) {
      throw makeError(env, ErrorCode::kDestroyed, "the communicator is shut down");
    }
    if (destroyed_ && !internal) {
      throw makeError(env, ErrorCode::kDestroyed,
                      "rank " + std::to_string(comm_->rank()) +
                          ": the communicator was destroyed; create a new one with init()");
    }
    auto* c = new Completion{Napi::Promise::Deferred::New(env), {}, false, {}, {}};
    for (const auto& v : keep) c->refs.push_back(Napi::Persistent(v));
    Napi::Promise promise = c->deferred.Promise();
    if (pending_++ == 0) {
      tsfn_.Ref(env);
      Ref();  // keep this object (and its worker) alive while operations are in flight
    }
    std::shared_ptr<Communicator> comm = comm_;
    Tsfn tsfn = tsfn_;
    executor_->submit([comm, op] { op(*comm); },
                      [comm, tsfn, c](std::exception_ptr e) mutable {
                        record(*comm, e, c);
                        // Fails only while the environment tears down; the completion then
                        // holds JS references that cannot be freed off the JS thread: leak it.
                        tsfn.BlockingCall(c);
                      });
    return promise;
  }

  // Worker thread: stores the outcome and, for a failed operation, tells the other ranks.
  static void record(Communicator& comm, std::exception_ptr e, Completion* c) {
    if (!e) return;
    c->failed = true;
    std::string note;  // about this rank's own buffers: not for the other ranks
    try {
      std::rethrow_exception(e);
    } catch (const nodeccl::Error& err) {
      c->code = err.code();
      note = err.note();
      c->message = std::string(err.what());
      c->message.resize(c->message.size() - note.size());
    } catch (const std::exception& err) {
      c->message = err.what();
    }
    // The non-blocking halves (the shortcut's, direct.h) throw kAborted with the group's text
    // once a failure notice woke the transport; report that failure's own code, as the
    // blocking path does (Communicator::sendRecv), so one failure never shows two codes.
    if (c->code == ErrorCode::kAborted && !comm.firstError().empty()) {
      c->code = comm.firstErrorCode();
      c->message = comm.firstError();
    }
    const std::string message = c->message;
    c->message += note;
    if (c->code != ErrorCode::kInvalidArgument && c->code != ErrorCode::kDestroyed) {
      try {
        // With its code, so that the other ranks fail with the same one (a timeout stays a
        // timeout everywhere; fail() ignores this when the communicator already failed).
        comm.fail(message, c->code);
      } catch (...) {
        // The store may be gone too; the local failure is already recorded in c.
      }
    }
  }

  // Whether the shortcut described at the top of this file may be tried now (the collective
  // must also pick its direct algorithm).
  bool fastPathOpen() const {
    return attached_ && !torndown_ && !destroyed_ && pending_ == 0 &&
           comm_->shm() != nullptr && fastSpin().count() > 0 &&
           !comm_->mpi();  // NODECCL_BACKEND=mpi: always through MPI
  }

  // Whether a call of `bytes` per rank (the larger of its input and output) that did not pick
  // its direct algorithm takes the shortcut with its staged one.
  bool fastStaged(size_t bytes) const {
    return bytes <= fastMaxBytes() && nodeccl::usesStaged(*comm_);
  }

  // The shortcut: `start()` checks the arguments and begins the direct operation; it is
  // finished here when the peers are there within fastSpin(), else by the worker.
  template <typename Start>
  Napi::Value tryFast(Napi::Env env, Start start, std::vector<Napi::Value> keep) {
    std::shared_ptr<nodeccl::SteppedOp> job;
    try {
      job = start();
      // Spin, then keep spinning with yields, so that a peer waiting for a core can run and
      // answer. Yield early only when the ranks outnumber the cores: a yield can hand the core
      // to another thread of this process for tens of microseconds, which measured here made
      // one call in two of some sizes ~20 us instead of ~2 us when every rank had a core.
      const auto yieldAfter = yieldAfter_;
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0;; ++i) {
        if (job->tryFinish()) {
          auto d = Napi::Promise::Deferred::New(env);
          d.Resolve(env.Undefined());
          return d.Promise();
        }
        if ((i & 15) != 15) continue;
        auto spent = std::chrono::steady_clock::now() - t0;
        if (spent >= fastSpin()) break;
        if (spent >= yieldAfter) std::this_thread::yield();
      }
    } catch (...) {
      // Rethrown on the worker, which fails the communicator and rejects as usual.
      std::exception_ptr e = std::current_exception();
      return enqueue(env, [e](Communicator&) { std::rethrow_exception(e); }, std::move(keep));
    }
    return enqueue(env, [job](Communicator&) { job->finish(); }, std::move(keep));
  }

  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    size_t count = countArg(info, 1);
    DataType dtype = dtypeArg(info, 2);
    void* data = bufferArg(info, 0, "data", count, dtype);
    ReduceOp op = opArg(info, 3);
    Millis timeout = timeoutArg(info, 4);
    if (fastPathOpen() && nodeccl::allReduceUsesDirect(*comm_, count, dtype)) {
      return tryFast(info.Env(), [&] {
        return nodeccl::startAllReduceDirect(*comm_, data, count, dtype, op, timeout);
      }, {info[0]});
    }
    if (fastPathOpen() && fastStaged(count * nodeccl::dtypeSize(dtype))) {
      return tryFast(info.Env(), [&] {
        return nodeccl::startAllReduceStaged(*comm_, data, count, dtype, op, timeout);
      }, {info[0]});
    }
    return enqueue(info.Env(), [=](Communicator& c) {
      nodeccl::allReduce(c, data, count, dtype, op, timeout);
    }, {info[0]});
  }

  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    size_t count = countArg(info, 1);
    DataType dtype = dtypeArg(info, 2);
    void* data = bufferArg(info, 0, "data", count, dtype);
    int root = intArg(info, 3, "root");
    Millis timeout = timeoutArg(info, 4);
    if (fastPathOpen() && nodeccl::broadcastUsesDirect(*comm_, count, dtype)) {
      return tryFast(info.Env(), [&] {
        return nodeccl::startBroadcastDirect(*comm_, data, count, dtype, root, timeout);
      }, {info[0]});
    }
    if (fastPathOpen() && fastStaged(count * nodeccl::dtypeSize(dtype))) {
      return tryFast(info.Env(), [&] {
        return nodeccl::startBroadcastStaged(*comm_, data, count, dtype, root, timeout);
      }, {info[0]});
    }
    return enqueue(info.Env(), [=](Communicator& c) {
      nodeccl::broadcast(c, data, count, dtype, root, timeout);
    }, {info[0]});
  }

  Napi::Value Reduce(const Napi::CallbackInfo& info) {
    size_t count = countArg(info, 1);
    DataType dtype = dtypeArg(info, 2);
    void* data = bufferArg(info, 0, "data", count, dtype);
    ReduceOp op = opArg(info, 3);
    int root = intArg(info, 4, "root");
    Millis timeout = timeoutArg(info, 5);
    return enqueue(info.Env(), [=](Communicator& c) {
      nodeccl::reduce(c, data, count, dtype, op, root, timeout);
    }, {info[0]});
  }

  Napi::Value AllGather(const Napi::CallbackInfo& info) {
    size_t count = countArg(info, 2);
    DataType dtype = dtypeArg(info, 3);
    const void* in = bufferArg(info, 0, "input", count, dtype);
    void* out = bufferArg(info, 1, "output", count * static_cast<size_t>(comm_->size()), dtype);
    Millis timeout = timeoutArg(info, 4);
    if (fastPathOpen() && nodeccl::allGatherUsesDirect(*comm_, count, dtype)) {
      return tryFast(info.Env(), [&] {
        return nodeccl::startAllGatherDirect(*comm_, in, out, count, dtype, timeout);
      }, {info[0], info[1]});
    }
    const size_t all = count * nodeccl::dtypeSize(dtype) * static_cast<size_t>(comm_->size());
    if (fastPathOpen() && fastStaged(all)) {
      return tryFast(info.Env(), [&] {
        return nodeccl::startAllGatherStaged(*comm_, in, out, count, dtype, timeout);
      }, {info[0], info[1]});
    }
    return enqueue(info.Env(), [=](Communicator& c) {
      nodeccl::allGather(c, in, out, count, dtype, timeout);
    }, {info[0], info[1]});
  }

  Napi::Value ReduceScatter(const Napi::CallbackInfo& info) {
    size_t count = countArg(info, 2);
    DataType dtype = dtypeArg(info, 3);
    const void* in =
        bufferArg(info, 0, "input", count * static_cast<size_t>(comm_->size()), dtype);
    void* out = bufferArg(info, 1, "output", count, dtype);
    ReduceOp op = opArg(info, 4);
    Millis timeout = timeoutArg(info, 5);
    if (fastPathOpen() && nodeccl::reduceScatterUsesDirect(*comm_, count, dtype)) {
      return tryFast(info.Env(), [&] {
        return nodeccl::startReduceScatterDirect(*comm_, in, out, count, dtype, op, timeout);
      }, {info[0], info[1]});
    }
    const size_t all = count * nodeccl::dtypeSize(dtype) * static_cast<size_t>(comm_->size());
    if (fastPathOpen() && fastStaged(all)) {
      return tryFast(info.Env(), [&] {
        return nodeccl::startReduceScatterStaged(*comm_, in, out, count, dtype, op, timeout);
      }, {info[0], info[1]});
    }
    return enqueue(info.Env(), [=](Communicator& c) {
      nodeccl::reduceScatter(c, in, out, count, dtype, op, timeout);
    }, {info[0], info[1]});
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    Millis timeout = timeoutArg(info, 0);
    if (fastPathOpen() && nodeccl::barrierUsesDirect(*comm_)) {
      return tryFast(info.Env(), [&] { return nodeccl::startBarrierDirect(*comm_, timeout); }, {});
    }
    return enqueue(info.Env(), [=](Communicator& c) { nodeccl::barrier(c, timeout); }, {});
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    size_t count = countArg(info, 1);
    DataType dtype = dtypeArg(info, 2);
    const void* data = bufferArg(info, 0, "data", count, dtype);
    int peer = intArg(info, 3, "peer");
    Millis timeout = timeoutArg(info, 4);
    return enqueue(info.Env(), [=](Communicator& c) {
      nodeccl::send(c, data, count, dtype, peer, timeout);
    }, {info[0]});
  }

  Napi::Value Recv(const Napi::CallbackInfo& info) {
    size_t count = countArg(info, 1);
    DataType dtype = dtypeArg(info, 2);
    void* data = bufferArg(info, 0, "data", count, dtype);
    int peer = intArg(info, 3, "peer");
    Millis timeout = timeoutArg(info, 4);
    return enqueue(info.Env(), [=](Communicator& c) {
      nodeccl::recv(c, data, count, dtype, peer, timeout);
    }, {info[0]});
  }

  Napi::Value AllToAll(const Napi::CallbackInfo& info) {
    const size_t n = static_cast<size_t>(comm_ ? comm_->size() : 0);
    std::vector<size_t> sc = countsArg(info, 2, "sendCounts", n);
    std::vector<size_t> rc = countsArg(info, 3, "recvCounts", n);
    DataType dtype = dtypeArg(info, 4);
    size_t sTotal = 0, rTotal = 0;
    for (size_t c : sc) sTotal += c;
    for (size_t c : rc) rTotal += c;
    const void* in = bufferArg(info, 0, "input", sTotal, dtype);
    void* out = bufferArg(info, 1, "output", rTotal, dtype);
    Millis timeout = timeoutArg(info, 5);
    return enqueue(info.Env(), [=](Communicator& c) {
      nodeccl::allToAll(c, in, sc, out, rc, dtype, timeout);
    }, {info[0], info[1]});
  }

  // gather(input, output | null, count, dtype, root, timeout): output is read on the root only.
  Napi::Value Gather(const Napi::CallbackInfo& info) {
    size_t count = countArg(info, 2);
    DataType dtype = dtypeArg(info, 3);
    const void* in = bufferArg(info, 0, "input", count, dtype);
    void* out = optionalBufferArg(info, 1, "output",
                                  count * static_cast<size_t>(comm_ ? comm_->size() : 0), dtype);
    int root = intArg(info, 4, "root");
    Millis timeout = timeoutArg(info, 5);
    return enqueue(info.Env(), [=](Communicator& c) {
      nodeccl::gather(c, in, out, count, dtype, root, timeout);
    }, out != nullptr ? std::vector<Napi::Value>{info[0], info[1]}
                      : std::vector<Napi::Value>{info[0]});
  }

  // scatter(input | null, output, count, dtype, root, timeout): input is read on the root only.
  Napi::Value Scatter(const Napi::CallbackInfo& info) {
    size_t count = countArg(info, 2);
    DataType dtype = dtypeArg(info, 3);
    const void* in = optionalBufferArg(info, 0, "input",
                                       count * static_cast<size_t>(comm_ ? comm_->size() : 0),
                                       dtype);
    void* out = bufferArg(info, 1, "output", count, dtype);
    int root = intArg(info, 4, "root");
    Millis timeout = timeoutArg(info, 5);
    return enqueue(info.Env(), [=](Communicator& c) {
      nodeccl::scatter(c, in, out, count, dtype, root, timeout);
    }, in != nullptr ? std::vector<Napi::Value>{info[0], info[1]}
                     : std::vector<Napi::Value>{info[1]});
  }

  // batchSendRecv(sendPeers, sendBufs, recvPeers, recvBufs, timeout): whole typed arrays.
  Napi::Value BatchSendRecv(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<Napi::Value> keep;
    auto readList = [&](size_t pi, size_t bi, const char* what, auto add) {
      if (!info[pi].IsArray() || !info[bi].IsArray() ||
          info[pi].As<Napi::Array>().Length() != info[bi].As<Napi::Array>().Length()) {
        throw makeError(env, ErrorCode::kInvalidArgument,
                        std::string(what) + " peers and buffers must be arrays of one length");
      }
      Napi::Array peers = info[pi].As<Napi::Array>(), bufs = info[bi].As<Napi::Array>();
      for (uint32_t k = 0; k < peers.Length(); ++k) {
        Napi::Value p = peers.Get(k), b = bufs.Get(k);
        if (!p.IsNumber()) {
          throw makeError(env, ErrorCode::kInvalidArgument,
                          std::string(what) + " peer must be an integer");
        }
        ByteView v = typedArrayView(b, what);
        keep.push_back(b);
        add(p.As<Napi::Number>().Int32Value(), v);
      }
    };
    std::vector<nodeccl::P2PSend> sends;
    std::vector<nodeccl::P2PRecv> recvs;
    readList(0, 1, "sends", [&](int peer, const ByteView& v) {
      sends.push_back({peer, v.data, v.bytes});
    });
    readList(2, 3, "recvs", [&](int peer, const ByteView& v) {
      recvs.push_back({peer, v.data, v.bytes});
    });
    Millis timeout = timeoutArg(info, 4);
    return enqueue(env, [=](Communicator& c) {
      nodeccl::batchSendRecv(c, sends, recvs, timeout);
    }, keep);
  }

  // Synchronous and thread-safe in the core: wakes a blocked operation at once.
  Napi::Value Abort(const Napi::CallbackInfo& info) {
    std::string reason = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value()
                                            : std::string("aborted by the application");
    if (comm_ && !torndown_) comm_->abort(reason);
    return info.Env().Undefined();
  }

  // Runs after the operations already queued, then closes the connections.
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (destroyed_ || torndown_) {
      auto d = Napi::Promise::Deferred::New(env);
      d.Resolve(env.Undefined());
      return d.Promise();
    }
    destroyed_ = true;
    return enqueue(env, [](Communicator& c) { c.destroy(); }, {}, true);
  }

  static void onEnvCleanup(void* self) {
    static_cast<CommWrap*>(self)->teardown("the Node.js environment is shutting down");
  }

  // Stops the worker and frees native resources; JS thread only. Idempotent.
  void teardown(const char* why) {
    if (!attached_ || torndown_) return;
    torndown_ = true;
    if (pending_ > 0) comm_->abort(std::string("rank ") + std::to_string(comm_->rank()) +
                                   ": " + why);
    executor_->shutdown();
    comm_->destroy();
    if (store_) store_->close();  // this communicator's own store connection
    tsfn_.Release();
  }

  std::shared_ptr<nodeccl::Store> store_;
  std::shared_ptr<Communicator> comm_;
  std::unique_ptr<nodeccl::Executor> executor_;
  Tsfn tsfn_;
  size_t pending_ = 0;
  std::chrono::microseconds yieldAfter_{3};
  bool attached_ = false;
  bool destroyed_ = false;
  bool torndown_ = false;
};

void settle(Napi::Env env, Napi::Function, CommWrap* self, Completion* c) {
  if (env == nullptr) return;  // environment torn down: see enqueue
  self->finish(env, c);
}

std::string stringField(Napi::Object o, const char* name) {
  Napi::Value v = o.Get(name);
  if (!v.IsString()) {
    throw makeError(o.Env(), ErrorCode::kInvalidArgument,
                    std::string("createCommunicator: ") + name + " must be a string");
  }
  return v.As<Napi::String>().Utf8Value();
}

double numberField(Napi::Object o, const char* name) {
  Napi::Value v = o.Get(name);
  if (!v.IsNumber()) {
    throw makeError(o.Env(), ErrorCode::kInvalidArgument,
                    std::string("createCommunicator: ") + name + " must be a number");
  }
  return v.As<Napi::Number>().DoubleValue();
}

// A rendezvous in progress, cancellable when the environment tears down: the store client is
// closed (its requests then fail at once) and connecting stops between attempts.
struct PendingCreate {
  std::mutex mu;
  bool cancelled = false;
  std::shared_ptr<nodeccl::TcpStoreClient> store;

  void setStore(std::shared_ptr<nodeccl::TcpStoreClient> s) {
    std::lock_guard<std::mutex> lock(mu);
    store = std::move(s);
    if (cancelled) store->close();
  }
  void cancel() {
    std::lock_guard<std::mutex> lock(mu);
    cancelled = true;
    if (store) store->close();
  }
  bool isCancelled() {
    std::lock_guard<std::mutex> lock(mu);
    return cancelled;
  }
};

// Connects to the store in short attempts until `timeout`, so that a cancel is seen promptly.
std::shared_ptr<nodeccl::TcpStoreClient> connectCancellable(PendingCreate& p,
                                                            const std::string& host, int port,
                                                            Millis timeout, int rank) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    try {
      Millis attempt = std::max(Millis(1), std::min(left, Millis(250)));
      auto client = std::make_shared<nodeccl::TcpStoreClient>(host, port, attempt);
      // The communicator's watcher clones this client later: give the clone the whole init
      // timeout, not one attempt's 250 ms (a dropped SYN alone takes a second to resend, and
      // a rank whose clone failed left the job: its peers saw it as lost).
      client->setConnectTimeout(timeout);
      return client;
    } catch (const nodeccl::Error& e) {
      if (e.code() != ErrorCode::kTimeout) throw;
    }
    if (p.isCancelled()) {
      throw nodeccl::Error(ErrorCode::kAborted, "rank " + std::to_string(rank) +
                                                    ": init cancelled: the environment is "
                                                    "shutting down");
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw nodeccl::Error(ErrorCode::kTimeout,
                           "rank " + std::to_string(rank) + ": could not reach the store at " +
                               host + ":" + std::to_string(port) + " within " +
                               std::to_string(timeout.count()) +
                               " ms; check MASTER_ADDR/MASTER_PORT and that rank 0 is running");
    }
  }
}

// The options object of createCommunicator and checkCommunicatorOptions.
nodeccl::CommOptions commOptions(const Napi::CallbackInfo& info, const char* fn) {
  if (!info[0].IsObject()) {
    throw makeError(info.Env(), ErrorCode::kInvalidArgument, std::string(fn) +
                    ": options required");
  }
  Napi::Object o = info[0].As<Napi::Object>();
  nodeccl::CommOptions opts;
  opts.rank = static_cast<int>(numberField(o, "rank"));
  opts.size = static_cast<int>(numberField(o, "size"));
  opts.prefix = stringField(o, "prefix");
  opts.listenHost = stringField(o, "listenHost");
  opts.transport = stringField(o, "transport");
  if (o.Has("backend")) opts.backend = stringField(o, "backend");  // "native" when absent
  opts.initTimeout = Millis(static_cast<int64_t>(numberField(o, "initTimeoutMs")));
  opts.timeout = Millis(static_cast<int64_t>(numberField(o, "timeoutMs")));
  return opts;
}

// checkCommunicatorOptions(options): throws what createCommunicator would throw for these
// options and the environment's overrides (NODECCL_ALGO, ...), before any store is touched, so
// that every rank fails at once on a bad value instead of some waiting for rank 0's store.
Napi::Value CheckCommunicatorOptions(const Napi::CallbackInfo& info) {
  nodeccl::CommOptions opts = commOptions(info, "checkCommunicatorOptions");
  try {
    Communicator::resolveOptions(opts);
  } catch (const nodeccl::Error& e) {
    throw makeError(info.Env(), e);
  }
  return info.Env().Undefined();
}

// createCommunicator(options) -> Promise<Communicator>: connects to the store and runs the
// rendezvous off the JS thread; the init timeout bounds both together.
Napi::Value CreateCommunicator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  nodeccl::CommOptions opts = commOptions(info, "createCommunicator");
  Napi::Object o = info[0].As<Napi::Object>();
  std::string host = stringField(o, "storeHost");
  int port = static_cast<int>(numberField(o, "storePort"));

  auto pending = std::make_shared<PendingCreate>();

  struct Result {
    std::shared_ptr<nodeccl::Store> store;
    std::shared_ptr<Communicator> comm;
  };
  auto out = std::make_shared<Result>();
  return runOnThread(
      env, "nodeccl-init",
      [opts, host, port, out, pending]() mutable {
        auto start = std::chrono::steady_clock::now();
        auto store = connectCancellable(*pending, host, port, opts.initTimeout, opts.rank);
        pending->setStore(store);
        out->store = store;
        auto used = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start);
        opts.initTimeout = std::max(Millis(1), opts.initTimeout - used);
        out->comm = Communicator::create(out->store, opts);
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object obj = addonData(env)->communicatorCtor.New({});
        CommWrap::Unwrap(obj)->attach(env, out->store, out->comm);
        return obj;
      },
      [pending] { pending->cancel(); });
}

}  // namespace

void InitComm(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = CommWrap::Define(env);
  addonData(env)->communicatorCtor = Napi::Persistent(ctor);
  exports.Set("Communicator", ctor);
  exports.Set("createCommunicator",
              Napi::Function::New(env, CreateCommunicator, "createCommunicator"));
  exports.Set("checkCommunicatorOptions",
              Napi::Function::New(env, CheckCommunicatorOptions, "checkCommunicatorOptions"));
}

}  // namespace nodeccl_binding
