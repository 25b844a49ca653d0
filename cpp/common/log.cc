// SPDX-License-Identifier: Apache-2.0
// Implementation of NODECCL_DEBUG logging: settings read once from the environment. Lines go to
// stderr, or with NODECCL_DEBUG_FILE to a file per rank and process (%r and %p in the template).
#include "common/log.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

namespace nodeccl {
namespace detail {

std::atomic<int> gLogLevel{-1};

namespace {
std::once_flag gInitOnce;
std::set<std::string>* gSubsys = nullptr;  // null: every subsystem
char gHost[128] = "?";
const char* gFileTemplate = nullptr;  // NODECCL_DEBUG_FILE, or null for stderr

void readEnvironment() {
  const char* lvl = std::getenv("NODECCL_DEBUG");
  int level = 0;
  if (lvl != nullptr) {
    if (!strcasecmp(lvl, "warn")) level = 1;
    else if (!strcasecmp(lvl, "info")) level = 2;
    else if (!strcasecmp(lvl, "trace")) level = 3;
    else if (*lvl != '\0' && strcasecmp(lvl, "none") != 0) {
      std::fprintf(stderr, "nodeccl: NODECCL_DEBUG=%s is not one of warn, info, trace; "
                           "using warn\n", lvl);
      level = 1;
    }
  }
  const char* subs = std::getenv("NODECCL_DEBUG_SUBSYS");
  if (subs != nullptr && *subs != '\0') {
    gSubsys = new std::set<std::string>();
    std::string s(subs);
    size_t start = 0;
    while (start <= s.size()) {
      size_t comma = s.find(',', start);
      if (comma == std::string::npos) comma = s.size();
      if (comma > start) gSubsys->insert(s.substr(start, comma - start));
      start = comma + 1;
    }
  }
  const char* file = std::getenv("NODECCL_DEBUG_FILE");
  if (file != nullptr && *file != '\0') gFileTemplate = file;
  gethostname(gHost, sizeof(gHost) - 1);
  gLogLevel.store(level, std::memory_order_relaxed);
  if (level >= 2) {
    logLine(LogLevel::kInfo, "init", -1, 0,
            strcat("NODECCL_DEBUG=", lvl, " NODECCL_DEBUG_SUBSYS=", subs ? subs : "(all)",
                   " NODECCL_DEBUG_FILE=", gFileTemplate ? gFileTemplate : "(stderr)"));
  }
}
}  // namespace

int initLogLevel() {
  std::call_once(gInitOnce, readEnvironment);
  return gLogLevel.load(std::memory_order_relaxed);
}

}  // namespace detail

bool logSubsysEnabled(const char* subsys) {
  detail::initLogLevel();
  return detail::gSubsys == nullptr || detail::gSubsys->count(subsys) > 0;
}

// The path NODECCL_DEBUG_FILE names for `rank`: %r becomes the rank (RANK from the environment,
// else "x", before a communicator exists), %p the pid, %h the host, %% a percent sign.
std::string logFilePath(const char* tmpl, int rank) {
  std::string out;
  for (const char* c = tmpl; *c != '\0'; c++) {
    if (*c != '%' || c[1] == '\0') {
      out += *c;
      continue;
    }
    c++;
    if (*c == 'r') {
      const char* env = std::getenv("RANK");
      out += rank >= 0 ? std::to_string(rank) : (env != nullptr && *env != '\0' ? env : "x");
    } else if (*c == 'p') {
      out += std::to_string(static_cast<int>(getpid()));
    } else if (*c == 'h') {
      // Looked up here, not from gHost: this runs inside the one-time setup too.
      char host[128] = "?";
      gethostname(host, sizeof(host) - 1);
      out += host;
    } else {
      if (*c != '%') out += '%';
      out += *c;
    }
  }
  return out;
}

// The stream for `rank`'s lines: stderr, or the debug file (opened once per path, append mode,
// so that the JS side's lines and these interleave whole). Falls back to stderr, once saying
// why, when the file cannot be opened.
static FILE* logStream(int rank) {
  if (detail::gFileTemplate == nullptr) return stderr;
  static std::mutex mu;
  static std::map<std::string, FILE*> files;
  std::string path = logFilePath(detail::gFileTemplate, rank);
  std::lock_guard<std::mutex> lock(mu);
  auto it = files.find(path);
  if (it != files.end()) return it->second;
  FILE* f = std::fopen(path.c_str(), "a");
  if (f == nullptr) {
    std::fprintf(stderr, "nodeccl: cannot open NODECCL_DEBUG_FILE %s: %s; logging to stderr\n",
                 path.c_str(), std::strerror(errno));
    f = stderr;
  } else {
    setvbuf(f, nullptr, _IOLBF, 0);
  }
  files[path] = f;
  return f;
}

void logLine(LogLevel level, const char* subsys, int rank, int size, const std::string& msg) {
  static const char* names[] = {"NONE", "WARN", "INFO", "TRACE"};
  char who[32];
  if (rank < 0) std::snprintf(who, sizeof(who), "-/-");
  else std::snprintf(who, sizeof(who), "%d/%d", rank, size);
  std::fprintf(logStream(rank), "%s:%d %s [%s] %s %s\n", detail::gHost,
               static_cast<int>(getpid()), who, subsys, names[static_cast<int>(level)],
               msg.c_str());
}

}  // namespace nodeccl
