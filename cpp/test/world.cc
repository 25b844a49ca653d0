// SPDX-License-Identifier: Apache-2.0
// runWorld: ranks as threads over real loopback TCP, with an in-process store server.
#include "test/world.h"

#include <atomic>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "test/harness.h"

namespace nodeccl_test {

namespace {

// One rank: its own store connection and communicator; fn's exceptions become test failures
// and, like the executor would, fail the communicator so that the other ranks stop waiting.
void runRank(int rank, int port, const nodeccl::CommOptions& opts,
             const std::function<void(nodeccl::Communicator&)>& fn) {
  std::unique_ptr<nodeccl::Communicator> comm;
  try {
    auto store = std::make_shared<nodeccl::TcpStoreClient>("127.0.0.1", port,
                                                           nodeccl::Millis(10000));
    comm = nodeccl::Communicator::create(store, opts);
    fn(*comm);
  } catch (const std::exception& e) {
    if (comm) comm->fail(e.what());
    fail("rank " + std::to_string(rank) + ": " + e.what());
  }
  if (comm) comm->destroy();
}

}  // namespace

void runWorld(int size, const std::function<void(nodeccl::Communicator&)>& fn,
              nodeccl::CommOptions base) {
  runWorldOnHosts(std::string(static_cast<size_t>(size), '\0'), fn, base);
}

void runWorldOnHosts(const std::string& hosts,
                     const std::function<void(nodeccl::Communicator&)>& fn,
                     nodeccl::CommOptions base) {
  const int size = static_cast<int>(hosts.size());
  static std::atomic<int> counter{0};
  nodeccl::TcpStoreServer server("127.0.0.1", 0);
  // A fresh prefix per call, so that no key of an earlier world is seen.
  base.prefix += "/" + std::to_string(getpid()) + "/" + std::to_string(counter++);
  base.size = size;
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    nodeccl::CommOptions opts = base;
    opts.rank = r;
    if (hosts[r] != '\0') opts.hostId = std::string("test-host-") + hosts[r];
    threads.emplace_back([&, opts, r] { runRank(r, server.port(), opts, fn); });
  }
  for (auto& t : threads) t.join();
  server.stop();
}

}  // namespace nodeccl_test
