// SPDX-License-Identifier: Apache-2.0
// Runner for the tests registered with NODECCL_TEST.
#include "test/harness.h"

#include <chrono>
#include <cstdio>
#include <exception>
#include <mutex>
#include <vector>

namespace nodeccl_test {
namespace {

struct Entry {
  const char* name;
  std::function<void()> fn;
};

std::vector<Entry>& registry() {
  static std::vector<Entry> r;
  return r;
}

std::mutex gMu;
int gFailures = 0;

}  // namespace

Registrar::Registrar(const char* name, std::function<void()> fn) {
  registry().push_back({name, std::move(fn)});
}

void fail(const std::string& message) {
  std::lock_guard<std::mutex> lock(gMu);
  if (gFailures < 20) std::fprintf(stderr, "    %s\n", message.c_str());
  ++gFailures;
}

}  // namespace nodeccl_test

int main(int argc, char** argv) {
  using namespace nodeccl_test;
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0, failed = 0;
  for (auto& t : registry()) {
    if (filter && std::string(t.name).find(filter) == std::string::npos) continue;
    gFailures = 0;
    auto t0 = std::chrono::steady_clock::now();
    try {
      t.fn();
    } catch (const std::exception& e) {
      fail(std::string("uncaught exception: ") + e.what());
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                    .count();
    if (gFailures == 0) {
      ++passed;
      std::printf("ok   %-44s %8.1f ms\n", t.name, ms);
    } else {
      ++failed;
      std::printf("FAIL %-44s %8.1f ms (%d failures)\n", t.name, ms, gFailures);
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
