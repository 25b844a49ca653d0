// SPDX-License-Identifier: Apache-2.0
// Debug logging controlled by NODECCL_DEBUG=warn|info|trace and NODECCL_DEBUG_SUBSYS=a,b,...
// (default: all subsystems). Lines go to stderr as "host:pid rank/size [subsys] LEVEL message",
// or to NODECCL_DEBUG_FILE (a path template: %r rank, %p pid, %h host).
// When logging is off, NODECCL_LOG costs one relaxed atomic load.
#pragma once

#include <atomic>
#include <string>

#include "common/error.h"

namespace nodeccl {

enum class LogLevel : int { kNone = 0, kWarn = 1, kInfo = 2, kTrace = 3 };

namespace detail {
extern std::atomic<int> gLogLevel;  // -1 until the environment has been read
int initLogLevel();
}  // namespace detail

inline int logLevel() {
  int l = detail::gLogLevel.load(std::memory_order_relaxed);
  return l >= 0 ? l : detail::initLogLevel();
}

// True when `subsys` is selected by NODECCL_DEBUG_SUBSYS (or it is unset).
bool logSubsysEnabled(const char* subsys);

// Expands a NODECCL_DEBUG_FILE template for `rank`: %r rank, %p pid, %h host, %% percent.
std::string logFilePath(const char* tmpl, int rank);

// Writes one line; rank < 0 prints "-" for rank/size (no communicator yet).
void logLine(LogLevel level, const char* subsys, int rank, int size, const std::string& msg);

}  // namespace nodeccl

#define NODECCL_LOG(level, subsys, rank, size, ...)                                      \
  do {                                                                                  \
    if (::nodeccl::logLevel() >= static_cast<int>(level) &&                             \
        ::nodeccl::logSubsysEnabled(subsys)) {                                          \
      ::nodeccl::logLine(level, subsys, rank, size, ::nodeccl::strcat(__VA_ARGS__));    \
    }                                                                                   \
  } while (0)

#define NODECCL_WARN(subsys, rank, size, ...) \
  NODECCL_LOG(::nodeccl::LogLevel::kWarn, subsys, rank, size, __VA_ARGS__)
#define NODECCL_INFO(subsys, rank, size, ...) \
  NODECCL_LOG(::nodeccl::LogLevel::kInfo, subsys, rank, size, __VA_ARGS__)
#define NODECCL_TRACE(subsys, rank, size, ...) \
  NODECCL_LOG(::nodeccl::LogLevel::kTrace, subsys, rank, size, __VA_ARGS__)
