// SPDX-License-Identifier: Apache-2.0
// A minimal test harness for the C++ test binary: NODECCL_TEST registers a test; EXPECT_*
// record failures with both values and file:line. main() (harness.cc) runs the tests whose name
// contains argv[1] (all when absent) and ends with "N passed, N failed".
#pragma once

#include <functional>
#include <sstream>
#include <string>

namespace nodeccl_test {

struct Registrar {
  Registrar(const char* name, std::function<void()> fn);
};

// Records a failure of the test running on this process (thread-safe).
void fail(const std::string& message);

}  // namespace nodeccl_test

#define NODECCL_TEST(name)                                               \
  static void name##_body();                                             \
  static ::nodeccl_test::Registrar name##_registrar(#name, name##_body); \
  static void name##_body()

#define EXPECT_TRUE(cond)                                                                    \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::ostringstream os_;                                                                \
      os_ << __FILE__ << ":" << __LINE__ << ": expected " #cond;                             \
      ::nodeccl_test::fail(os_.str());                                                       \
    }                                                                                        \
  } while (0)

#define EXPECT_EQ(a, b)                                                                      \
  do {                                                                                       \
    auto va_ = (a);                                                                          \
    auto vb_ = (b);                                                                          \
    if (!(va_ == vb_)) {                                                                     \
      std::ostringstream os_;                                                                \
      os_ << __FILE__ << ":" << __LINE__ << ": expected " #a " == " #b " (" << va_ << " vs " \
          << vb_ << ")";                                                                     \
      ::nodeccl_test::fail(os_.str());                                                       \
    }                                                                                        \
  } while (0)

#define EXPECT_NEAR(a, b, tol)                                                              \
  do {                                                                                      \
    double va_ = (a), vb_ = (b), vt_ = (tol);                                               \
    if (!(va_ - vb_ <= vt_ && vb_ - va_ <= vt_)) {                                          \
      std::ostringstream os_;                                                               \
      os_ << __FILE__ << ":" << __LINE__ << ": expected |" #a " - " #b "| <= " << vt_       \
          << " (" << va_ << " vs " << vb_ << ")";                                           \
      ::nodeccl_test::fail(os_.str());                                                      \
    }                                                                                       \
  } while (0)

// Expects `stmt` to throw nodeccl::Error with `code` (and, if non-empty, `substr` in what()).
#define EXPECT_THROWS_CODE(stmt, want_code_, substr)                                               \
  do {                                                                                       \
    bool threw_ = false;                                                                     \
    try {                                                                                    \
      stmt;                                                                                  \
    } catch (const ::nodeccl::Error& e_) {                                                   \
      threw_ = true;                                                                         \
      std::string what_ = e_.what();                                                         \
      if (e_.code() != (want_code_) || what_.find(substr) == std::string::npos) {                  \
        ::nodeccl_test::fail(std::string(__FILE__) + ":" + std::to_string(__LINE__) +        \
                             ": wrong error: " + ::nodeccl::errorCodeName(e_.code()) + " " + \
                             what_);                                                         \
      }                                                                                      \
    }                                                                                        \
    if (!threw_) {                                                                           \
      ::nodeccl_test::fail(std::string(__FILE__) + ":" + std::to_string(__LINE__) +          \
                           ": expected " #stmt " to throw");                                 \
    }                                                                                        \
  } while (0)
