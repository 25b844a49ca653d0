// SPDX-License-Identifier: Apache-2.0
// NODECCL_TRACE timelines (see trace.h): each event is appended to its rank's file as it
// happens (one write(2), so a crash or SIGKILL loses none already recorded), at most
// kMaxEvents per file (later ones are counted, not written). The file is a JSON array of trace
// events: its closing bracket is written at process exit, and trace viewers accept a file
// without it, as a crashed process leaves it.
#include "common/trace.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
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
                   ".json as events happen");
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
  int fd = -1;          // the open file; -1 when it could not be created
  size_t written = 0;   // events in the file
  size_t dropped = 0;   // events beyond kMaxEvents
  bool closed = false;  // the closing bracket is written
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

// Appends `text` whole (retrying short writes); false on an I/O error.
bool appendAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Creates the file and writes its first element, the process name (with mu held).
void createFile(Track::Impl& t) {
  t.fd = ::open(t.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (t.fd < 0) {
    NODECCL_WARN("init", t.rank, 0, "NODECCL_TRACE: cannot create ", t.path, ": ",
                 std::strerror(errno), "; no trace for rank ", t.rank,
                 " (does the directory exist and is it writable?)");
    return;
  }
  appendAll(t.fd, strcat("[\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":", getpid(),
                         ",\"tid\":0,\"args\":{\"name\":\"nodeccl rank ", t.rank, " (pid ",
                         getpid(), ")\"}}"));
}

// Ends the array: a metadata event with the dropped count, then the closing bracket.
void closeFile(Track::Impl& t) {
  std::lock_guard<std::mutex> lock(t.mu);
  if (t.fd < 0 || t.closed) return;
  t.closed = true;
  appendAll(t.fd, strcat(",\n{\"name\":\"nodeccl_trace_end\",\"ph\":\"M\",\"pid\":", getpid(),
                         ",\"tid\":0,\"args\":{\"rank\":", t.rank, ",\"events\":", t.written,
                         ",\"droppedEvents\":", t.dropped, "}}\n]\n"));
  ::close(t.fd);
  t.fd = -1;
}

void flushAll() {
  std::vector<std::shared_ptr<Track::Impl>> all;
  {
    std::lock_guard<std::mutex> lock(registry().mu);
    for (auto& kv : registry().byRank) all.push_back(kv.second);
  }
  for (auto& t : all) closeFile(*t);
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
    std::lock_guard<std::mutex> fl(slot->mu);
    createFile(*slot);
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
  if (impl_->fd < 0 || impl_->closed) return;
  if (impl_->written >= kMaxEvents) {
    impl_->dropped++;
    return;
  }
  if (appendAll(impl_->fd, ",\n" + e)) impl_->written++;
}

void Track::flush() {
  // Events reach the file as they happen; nothing is buffered here.
}

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

void CommTimeline::phase(const char* name, Clock::time_point start, Clock::time_point end,
                         const std::string& args) {
  if (!track_) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::string all = strcat("\"op\":\"", jsonEscape(name_), "\"", args.empty() ? "" : ",", args);
  track_->complete(name, "step", start, end, all);
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
