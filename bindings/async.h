// SPDX-License-Identifier: Apache-2.0
// PromiseWorker: runs a blocking core call on the libuv thread pool and settles a Promise on the
// JS thread. Used for infrequent calls (store requests, rendezvous); collectives use their
// communicator's own ordered worker thread instead (see comm.cc).
#pragma once

#include <napi.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "util.h"

namespace nodeccl_binding {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;                     // worker thread; may throw
  using Result = std::function<Napi::Value(Napi::Env)>;  // JS thread, after Work succeeded

  // Queues `work`; `keepAlive` values stay referenced until the Promise settles.
  static Napi::Promise Run(Napi::Env env, Work work, Result result,
                           const std::vector<Napi::Value>& keepAlive = {}) {
    auto* w = new PromiseWorker(env, std::move(work), std::move(result));
    for (const auto& v : keepAlive) {
      w->refs_.push_back(Napi::Persistent(v));
    }
    Napi::Promise p = w->deferred_.Promise();
    w->Queue();
    return p;
  }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const nodeccl::Error& e) {
      code_ = e.code();
      SetError(e.what());
    } catch (const std::exception& e) {
      code_ = nodeccl::ErrorCode::kInternal;
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(result_ ? result_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    deferred_.Reject(makeError(Env(), code_, e.Message()).Value());
  }

 private:
  PromiseWorker(Napi::Env env, Work work, Result result)
      : Napi::AsyncWorker(env, "nodeccl"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        result_(std::move(result)) {}

  Napi::Promise::Deferred deferred_;
  Work work_;
  Result result_;
  std::vector<Napi::Reference<Napi::Value>> refs_;
  nodeccl::ErrorCode code_ = nodeccl::ErrorCode::kInternal;
};

// A blocking job on its own thread, for work that must not sit in the libuv pool: Node waits
// for pool work to finish before it runs cleanup hooks when a worker thread terminates, so a
// rendezvous there would hold a terminating worker until its timeout. A job on its own thread is
// cancelled by an environment cleanup hook instead. Costs a thread start (milliseconds), which is
// fine for init.
//
// Teardown order matters: the hook is added after the thread-safe function, so it runs before
// Node frees that function; from then on the thread must not call it (`envGone`).
struct ThreadJobState {
  std::mutex mu;
  bool envGone = false;
  std::function<void()> cancel;  // called once, from the cleanup hook
};

struct ThreadJob {
  Napi::Promise::Deferred deferred;
  PromiseWorker::Result result;
  std::shared_ptr<ThreadJobState> state;
  bool failed = false;
  nodeccl::ErrorCode code = nodeccl::ErrorCode::kInternal;
  std::string message;
};

inline void onThreadJobEnvCleanup(void* arg) {
  auto* state = static_cast<ThreadJobState*>(arg);
  std::lock_guard<std::mutex> lock(state->mu);
  state->envGone = true;
  if (state->cancel) state->cancel();
}

inline void settleThreadJob(Napi::Env env, Napi::Function, std::nullptr_t*, ThreadJob* job) {
  if (env == nullptr) return;  // the environment is gone; its references cannot be freed here
  napi_remove_env_cleanup_hook(env, onThreadJobEnvCleanup, job->state.get());
  if (job->failed) {
    job->deferred.Reject(makeError(env, job->code, job->message).Value());
  } else {
    try {
      job->deferred.Resolve(job->result ? job->result(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      job->deferred.Reject(e.Value());
    }
  }
  delete job;
}

using ThreadJobTsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, ThreadJob, settleThreadJob>;

// Runs `work` on a new thread; `cancel` (may be empty) makes it return soon when the
// environment shuts down first.
inline Napi::Promise runOnThread(Napi::Env env, const char* name, PromiseWorker::Work work,
                                 PromiseWorker::Result result, std::function<void()> cancel) {
  auto state = std::make_shared<ThreadJobState>();
  state->cancel = std::move(cancel);
  auto* job = new ThreadJob{Napi::Promise::Deferred::New(env), std::move(result), state};
  Napi::Promise promise = job->deferred.Promise();
  ThreadJobTsfn tsfn = ThreadJobTsfn::New(env, name, 0, 1);
  napi_add_env_cleanup_hook(env, onThreadJobEnvCleanup, state.get());
  std::thread([tsfn, job, state, work = std::move(work)]() mutable {
    try {
      work();
    } catch (const nodeccl::Error& e) {
      job->failed = true;
      job->code = e.code();
      job->message = e.what();
    } catch (const std::exception& e) {
      job->failed = true;
      job->message = e.what();
    }
    std::lock_guard<std::mutex> lock(state->mu);
    if (state->envGone) return;  // leaks `job`: its JS references died with the environment
    tsfn.BlockingCall(job);
    tsfn.Release();
  }).detach();
  return promise;
}

// Runs `fn`, turning a nodeccl::Error into a JS exception with its code.
template <typename F>
auto callCore(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const nodeccl::Error& e) {
    throw makeError(env, e);
  }
}

}  // namespace nodeccl_binding
