// SPDX-License-Identifier: Apache-2.0
// Tests of the NODECCL_DEBUG_FILE path template (common/log.h): %r rank, %p pid, %h host, %%.
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/log.h"
#include "test/harness.h"

NODECCL_TEST(log_file_path_expands_rank_pid_host) {
  const std::string pid = std::to_string(static_cast<int>(getpid()));
  EXPECT_EQ(nodeccl::logFilePath("/tmp/n.%r.%p.log", 3), "/tmp/n.3." + pid + ".log");
  EXPECT_EQ(nodeccl::logFilePath("a%%b%qc%", 0), std::string("a%b%qc%"));
  char host[128] = {0};
  gethostname(host, sizeof(host) - 1);
  EXPECT_EQ(nodeccl::logFilePath("%h", 0), std::string(host));
}

NODECCL_TEST(log_file_path_without_a_rank_uses_RANK_or_x) {
  const char* saved = std::getenv("RANK");
  std::string keep = saved ? saved : "";
  setenv("RANK", "7", 1);
  EXPECT_EQ(nodeccl::logFilePath("r%r", -1), std::string("r7"));
  unsetenv("RANK");
  EXPECT_EQ(nodeccl::logFilePath("r%r", -1), std::string("rx"));
  if (saved) setenv("RANK", keep.c_str(), 1);
}
