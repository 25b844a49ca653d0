// SPDX-License-Identifier: Apache-2.0
// Implementation of NODECCL_DEBUG logging: settings read once from the environment.
#include "common/log.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>

namespace nodeccl {
namespace detail {

std::atomic<int> gLogLevel{-1};

namespace {
std::once_flag gInitOnce;
std::set<std::string>* gSubsys = nullptr;  // null: every subsystem
char gHost[128] = "?";

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
  gethostname(gHost, sizeof(gHost) - 1);
  gLogLevel.store(level, std::memory_order_relaxed);
  if (level >= 2) {
    std::fprintf(stderr, "%s:%d -/- [init] INFO NODECCL_DEBUG=%s NODECCL_DEBUG_SUBSYS=%s\n",
                 gHost, static_cast<int>(getpid()), lvl, subs ? subs : "(all)");
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

void logLine(LogLevel level, const char* subsys, int rank, int size, const std::string& msg) {
  static const char* names[] = {"NONE", "WARN", "INFO", "TRACE"};
  char who[32];
  if (rank < 0) std::snprintf(who, sizeof(who), "-/-");
  else std::snprintf(who, sizeof(who), "%d/%d", rank, size);
  std::fprintf(stderr, "%s:%d %s [%s] %s %s\n", detail::gHost, static_cast<int>(getpid()), who,
               subsys, names[static_cast<int>(level)], msg.c_str());
}

}  // namespace nodeccl
