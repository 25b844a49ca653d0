// SPDX-License-Identifier: Apache-2.0
// Error type shared by the whole core: a message plus a stable code that the binding maps to a
// JS `code` string. Recoverable conditions (peer I/O, timeouts, bad arguments) throw Error;
// broken invariants use NODECCL_CHECK, which names both values and file:line.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace nodeccl {

// Numbering is mirrored in lib/errors.ts; append only.
enum class ErrorCode : int {
  kInternal = 0,         // a broken invariant inside nodeccl: a bug to report
  kInvalidArgument = 1,  // the caller passed something unusable
  kTimeout = 2,          // a wait ran past its deadline
  kPeerLost = 3,         // a peer closed its connection or died
  kMismatch = 4,         // ranks disagree on an operation (size, dtype, op, kind)
  kAborted = 5,          // the communicator was aborted, locally or by another rank
  kDestroyed = 6,        // used after destroy()
  kIo = 7,               // a socket or system call failed for another reason
  kStore = 8,            // the key-value store refused or lost a request
};

// The stable JS-visible name of a code, e.g. "ERR_NODECCL_TIMEOUT".
const char* errorCodeName(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  // `note`: what this rank adds about its own buffers ("; the shared array ... may hold
  // partial results"), appended to the message; kept apart so that a rank that reports a
  // peer's failure in that failure's own words (the binding does) can still add it.
  Error(ErrorCode code, const std::string& message, const std::string& note)
      : std::runtime_error(message + note), code_(code), note_(note) {}
  ErrorCode code() const { return code_; }
  const std::string& note() const { return note_; }

 private:
  ErrorCode code_;
  std::string note_;
};

// Builds a message from stream pieces: throw Error(kTimeout, strcat("rank ", r, ": ..."));
template <typename... Args>
std::string strcat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace nodeccl

// Invariant check: throws kInternal naming the expression, both values and where.
#define NODECCL_CHECK_OP(a, op, b)                                                     \
  do {                                                                                \
    if (!((a)op(b))) {                                                                \
      throw ::nodeccl::Error(::nodeccl::ErrorCode::kInternal,                          \
                             ::nodeccl::strcat("internal check failed at ", __FILE__, \
                                               ":", __LINE__, ": " #a " " #op " " #b  \
                                               " (", (a), " vs ", (b), ")"));         \
    }                                                                                 \
  } while (0)
#define NODECCL_CHECK_EQ(a, b) NODECCL_CHECK_OP(a, ==, b)
#define NODECCL_CHECK_LE(a, b) NODECCL_CHECK_OP(a, <=, b)
#define NODECCL_CHECK_LT(a, b) NODECCL_CHECK_OP(a, <, b)
#define NODECCL_CHECK(cond)                                                             \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      throw ::nodeccl::Error(::nodeccl::ErrorCode::kInternal,                           \
                             ::nodeccl::strcat("internal check failed at ", __FILE__,  \
                                               ":", __LINE__, ": " #cond));            \
    }                                                                                  \
  } while (0)
