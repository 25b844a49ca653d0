// SPDX-License-Identifier: Apache-2.0
// Test helper: ranks as threads. runWorld starts an in-process TcpStoreServer on loopback and
// `size` threads, each creating its own Communicator (real TCP connections over 127.0.0.1) and
// running fn on it. Exceptions escaping fn are recorded as test failures naming the rank.
#pragma once

#include <functional>
#include <string>

#include "comm/communicator.h"

namespace nodeccl_test {

void runWorld(int size, const std::function<void(nodeccl::Communicator&)>& fn,
              nodeccl::CommOptions base = nodeccl::CommOptions());

// The same, with rank r told it is on host hosts[r] (CommOptions::hostId): ranks with the same
// letter share memory, the others talk TCP, as in a job over several machines.
void runWorldOnHosts(const std::string& hosts,
                     const std::function<void(nodeccl::Communicator&)>& fn,
                     nodeccl::CommOptions base = nodeccl::CommOptions());

}  // namespace nodeccl_test
