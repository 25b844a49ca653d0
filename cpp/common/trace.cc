// SPDX-License-Identifier: Apache-2.0
// NODECCL_TRACE timelines (see trace.h): events are kept in memory per rank file, at most
// kMaxEvents each (later ones are counted, not kept), and written as one JSON document.
#include "common/trace.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "common/error.h"
#include "common/log.h"

namespace nodeccl {
namespace trace {
namespace {

constexpr size_t kMaxEvents = 1000000;  // ~100 MB of JSON per rank; the rest are counted

struct Env {
  bool on = false;
  std::string prefix;
  Clock::time_point epoch = Clock::now();
};

const Env& env() {
  static const Env e = [] {
    Env x;
    const char* p = std::getenv("NODECCL_TRACE");
    x.on = p != nullptr && *p != '\0';
    if (x.on) {
      x.prefix = p;
      NODECCL_INFO("init", -1, 0, "NODECCL_TRACE=", p, ": writing ", p, ".<rank>.", getpid(),
                   ".json at destroy and exit");
    }
    return x;
  }();
  return e;
}

thread_local Track* tCurrent = nullptr;

}  // namespace

struct Track::Impl {
  std::mutex mu;
  std::string path;
  int rank = 0;
  int nextTid = 0;
  std::vector<std::string> events;  // JSON objects
  size_t dropped = 0;
};

namespace {

// Every rank file of this process, written once more at exit.
struct Registry {
  std::mutex mu;
  std::map<int, std::shared_ptr<Track::Impl>> byRank;
};
Registry& registry() {
  static Registry* r = new Registry;  // leaked on purpose: used by the atexit handler
  return *r;
}

void writeFile(Track::Impl& t) {
  std::lock_guard<std::mutex> lock(t.mu);
  std::string tmp = t.path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    NODECCL_WARN("init", t.rank, 0, "NODECCL_TRACE: cannot write ", tmp, "; no trace for rank ",
                 t.rank, " (does the directory exist and is it writable?)");
    return;
  }
  std::fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", f);
  std::fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
               "\"args\":{\"name\":\"nodeccl rank %d (pid %d)\"}}", int(getpid()), t.rank,
               int(getpid()));
  for (const std::string& e : t.events) {
    std::fputs(",\n", f);
    std::fputs(e.c_str(), f);
  }
  std::fprintf(f, "\n],\"otherData\":{\"rank\":%d,\"droppedEvents\":%zu}}\n", t.rank,
               t.dropped);
  bool ok = std::fclose(f) == 0 && std::rename(tmp.c_str(), t.path.c_str()) == 0;
  if (!ok) NODECCL_WARN("init", t.rank, 0, "NODECCL_TRACE: could not finish ", t.path);
}

void flushAll() {
  std::vector<std::shared_ptr<Track::Impl>> all;
  {
    std::lock_guard<std::mutex> lock(registry().mu);
    for (auto& kv : registry().byRank) all.push_back(kv.second);
  }
  for (auto& t : all) writeFile(*t);
}

}  // namespace

bool enabled() { return env().on; }

std::unique_ptr<Track> open(int rank) {
  if (!enabled()) return nullptr;
  std::lock_guard<std::mutex> lock(registry().mu);
  static bool hooked = (std::atexit(flushAll), true);
  (void)hooked;
  auto& slot = registry().byRank[rank];
  if (!slot) {
    slot = std::make_shared<Track::Impl>();
    slot->rank = rank;
    slot->path = strcat(env().prefix, ".", rank, ".", getpid(), ".json");
  }
  auto t = std::make_unique<Track>();
  t->impl_ = slot;
  std::lock_guard<std::mutex> tl(slot->mu);
  t->tid = slot->nextTid++;
  return t;
}

void Track::complete(const std::string& name, const char* cat, Clock::time_point start,
                     Clock::time_point end, const std::string& args) {
  using us = std::chrono::duration<double, std::micro>;
  double ts = us(start - env().epoch).count(), dur = us(end - start).count();
  char num[96];
  std::snprintf(num, sizeof(num), "\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,\"tid\":%d", ts, dur,
                int(getpid()), tid);
  std::string e = strcat("{\"name\":\"", jsonEscape(name), "\",\"cat\":\"", cat,
                         "\",\"ph\":\"X\",", num, ",\"args\":{", args, "}}");
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->events.size() >= kMaxEvents) {
    impl_->dropped++;
    return;
  }
  impl_->events.push_back(std::move(e));
}

void Track::flush() { writeFile(*impl_); }

void CommTimeline::closeOp() {
  if (!open_) return;
  track_->complete(name_, "op", start_, std::max(last_, start_), args_);
  open_ = false;
}

void CommTimeline::beginOp(const std::string& name, const std::string& args) {
  if (!track_) return;
  std::lock_guard<std::mutex> lock(mu_);
  closeOp();
  open_ = true;
  name_ = name;
  args_ = args;
  start_ = last_ = Clock::now();
}

void CommTimeline::step(Clock::time_point start, Clock::time_point end, int sendPeer,
                        size_t sendBytes, int recvPeer, size_t recvBytes) {
  if (!track_) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::string args = strcat("\"op\":\"", jsonEscape(name_), "\"");
  if (sendPeer >= 0) args += strcat(",\"send_peer\":", sendPeer, ",\"send_bytes\":", sendBytes);
  if (recvPeer >= 0) args += strcat(",\"recv_peer\":", recvPeer, ",\"recv_bytes\":", recvBytes);
  track_->complete("sendRecv", "step", start, end, args);
  last_ = end;
}

void CommTimeline::finish() {
  if (!track_) return;
  std::lock_guard<std::mutex> lock(mu_);
  closeOp();
  track_->flush();
}

Track* current() { return tCurrent; }

ScopedCurrent::ScopedCurrent(Track* t) : prev_(tCurrent) { tCurrent = t; }
ScopedCurrent::~ScopedCurrent() { tCurrent = prev_; }

std::string jsonEscape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof(b), "\\u%04x", c);
      out += b;
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace trace
}  // namespace nodeccl
