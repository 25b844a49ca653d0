// SPDX-License-Identifier: Apache-2.0
// The executor's worker thread: runs tasks in submission order, each followed by its done
// callback with the exception the task threw (or null).
#include "comm/executor.h"

#include "common/error.h"

namespace nodeccl {

Executor::Executor() : worker_([this] { loop(); }) {}

Executor::~Executor() { shutdown(); }

void Executor::submit(Task task, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      throw Error(ErrorCode::kDestroyed,
                  "executor was shut down; create a new communicator with init()");
    }
    queue_.emplace_back(std::move(task), std::move(done));
  }
  cv_.notify_one();
}

void Executor::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  // join() from the worker itself (a done callback calling shutdown) would deadlock; the
  // owner then joins from its destructor, which must run on another thread.
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

void Executor::loop() {
  for (;;) {
    std::pair<Task, Done> item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has run
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    // Neither the task nor its callback may take the worker down.
    std::exception_ptr error;
    try {
      if (item.first) item.first();
    } catch (...) {
      error = std::current_exception();
    }
    try {
      if (item.second) item.second(error);
    } catch (...) {
    }
  }
}

}  // namespace nodeccl
