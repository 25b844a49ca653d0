// SPDX-License-Identifier: Apache-2.0
// Timeline traces: NODECCL_TRACE=/path/prefix makes every rank write prefix.<rank>.<pid>.json,
// a Chrome/Perfetto trace (the JSON "trace event format", "X" complete events, microseconds),
// showing each collective, each of its sendRecv steps (peers and bytes) or staged phases, and
// the time a step spent waiting for its peers. Open it at https://ui.perfetto.dev or
// chrome://tracing.
// Events are appended as they happen, so a process that crashes leaves a loadable trace.
// When NODECCL_TRACE is unset, every hook costs one load of a static flag.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace nodeccl {
namespace trace {

using Clock = std::chrono::steady_clock;

// True when NODECCL_TRACE is set (read once, logged at info).
bool enabled();

// One rank's timeline (one file). Thread-safe; shared by the communicators of that rank in
// this process, which appear as one track each (tid = `track`).
class Track {
 public:
  // Appends a complete event from `start` to `end`; `args` is a JSON object body
  // ("\"peer\":1,\"bytes\":4096") or "".
  void complete(const std::string& name, const char* cat, Clock::time_point start,
                Clock::time_point end, const std::string& args);
  // Kept for callers that end a timeline: events are already in the file when complete()
  // returns.
  void flush();

  struct Impl;
  std::shared_ptr<Impl> impl_;
  int tid = 0;
};

// The track of `rank` (its file), with a fresh tid for one communicator; null when tracing is
// off.
std::unique_ptr<Track> open(int rank);

// The track the calling thread is working for (set around a transport call), so that a
// transport can add its waits without knowing the communicator; null when none.
Track* current();
class ScopedCurrent {
 public:
  explicit ScopedCurrent(Track* t);
  ~ScopedCurrent();

 private:
  Track* prev_;
};

// One communicator's timeline: each operation, from its beginOp to the end of its last step
// (LIMITATION: local work after the last message, such as a direct all-reduce's final
// reduction, falls outside it: the collectives have no end hook), and each sendRecv step.
// Thread-safe (destroy() may finish it while the worker is in a step).
class CommTimeline {
 public:
  explicit CommTimeline(int rank) : track_(open(rank)) {}
  Track* track() const { return track_.get(); }
  // Closes the previous operation and opens `name` ("allReduce") with JSON `args`.
  void beginOp(const std::string& name, const std::string& args);
  void step(Clock::time_point start, Clock::time_point end, int sendPeer, size_t sendBytes,
            int recvPeer, size_t recvBytes);
  // A step of an algorithm that is not a sendRecv (a staged collective's copy, reduction or
  // flag exchange, coll/staged.h), with JSON `args` ("" or "\"bytes\":4096").
  void phase(const char* name, Clock::time_point start, Clock::time_point end,
             const std::string& args);
  // Closes the open operation and writes the file.
  void finish();

 private:
  void closeOp();
  std::mutex mu_;
  std::unique_ptr<Track> track_;
  bool open_ = false;
  std::string name_, args_;
  Clock::time_point start_, last_;
};

// A JSON string body with quotes and control characters escaped (no surrounding quotes).
std::string jsonEscape(const std::string& s);

}  // namespace trace
}  // namespace nodeccl
