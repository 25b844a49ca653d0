// SPDX-License-Identifier: Apache-2.0
// Splitting a fused step across threads: a list's elements are cut into chunks of kChunk
// elements (whole tensors stay whole when smaller), and a pool of long-lived threads plus the
// caller take chunks from a shared counter until none are left.
//
// Why long-lived: starting a thread costs ~20 ms on the virtual machines this runs on, far more
// than a step. Cost: per chunk one atomic increment; the kernels' own traffic is unchanged.
// Thread safety: one parallel call at a time (a mutex serializes callers); the pool's threads
// sleep on a condition variable between calls and are never joined (they die with the process).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "optim/optim.h"

namespace nodeccl {
namespace optim {

namespace {

constexpr size_t kChunk = 1 << 16;          // 64 Ki elements: 256 KiB per float array
constexpr size_t kMinParallel = 1 << 20;    // below 1 Mi elements, one thread is faster

struct Span {
  size_t tensor, begin, end;
};

// The pool: workers wait for a new generation, run chunks, and count themselves out.
class Pool {
 public:
  void run(int threads, const std::vector<Span>& spans,
           const std::function<void(size_t, size_t, size_t)>& fn) {
    std::lock_guard<std::mutex> callLock(callMutex_);
    {
      std::unique_lock<std::mutex> lock(mutex_);
      while (static_cast<int>(workers_.size()) < threads - 1) {
        workers_.emplace_back([this] { loop(); });
        workers_.back().detach();
      }
      spans_ = &spans;
      fn_ = &fn;
      next_ = 0;
      active_ = threads - 1;
      wanted_ = threads - 1;
      ++generation_;
    }
    wake_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return active_ == 0; });
  }

 private:
  void work() {
    for (;;) {
      size_t k = next_.fetch_add(1, std::memory_order_relaxed);
      if (k >= spans_->size()) return;
      const Span& s = (*spans_)[k];
      (*fn_)(s.tensor, s.begin, s.end);
    }
  }

  void loop() {
    unsigned long long seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen && wanted_ > 0; });
      seen = generation_;
      --wanted_;
      lock.unlock();
      work();
      lock.lock();
      if (--active_ == 0) done_.notify_one();
    }
  }

  std::mutex callMutex_, mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::vector<Span>* spans_ = nullptr;
  const std::function<void(size_t, size_t, size_t)>* fn_ = nullptr;
  std::atomic<size_t> next_{0};
  int active_ = 0, wanted_ = 0;
  unsigned long long generation_ = 0;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: detached workers may outlive static teardown
  return *p;
}

}  // namespace

void forEachSpan(const ParamList& list, const StepControl& c,
                 const std::function<void(size_t, size_t, size_t)>& fn) {
  size_t total = 0;
  for (size_t i = 0; i < list.count; ++i) total += list.sizes[i];
  if (c.threads <= 1 || total < kMinParallel) {
    for (size_t i = 0; i < list.count; ++i) fn(i, 0, list.sizes[i]);
    return;
  }
  std::vector<Span> spans;
  for (size_t i = 0; i < list.count; ++i) {
    for (size_t b = 0; b < list.sizes[i]; b += kChunk) {
      spans.push_back({i, b, std::min(list.sizes[i], b + kChunk)});
    }
  }
  pool().run(c.threads, spans, fn);
}

}  // namespace optim
}  // namespace nodeccl
