// SPDX-License-Identifier: Apache-2.0
// One long-lived worker thread that runs submitted tasks in submission order. Operations of one
// communicator all go through its executor, so they run in the order the user called them and
// never on the JS thread. Creating a thread per call costs ~20 ms here; this one is reused.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace nodeccl {

class Executor {
 public:
  using Task = std::function<void()>;
  // Called on the worker thread after the task, with the exception it threw (or null).
  using Done = std::function<void(std::exception_ptr)>;

  Executor();
  ~Executor();  // runs what is queued, then joins
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void submit(Task task, Done done);

  // Stops accepting tasks, finishes queued ones, joins the worker. Idempotent.
  void shutdown();

 private:
  void loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<Task, Done>> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace nodeccl
