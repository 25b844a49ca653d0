// SPDX-License-Identifier: Apache-2.0
// Network interfaces by name (getifaddrs): the address a rank listens on when
// NODECCL_SOCKET_IFNAME picks the interface, and the name of the interface that owns an address
// (for the log line saying which one was chosen).
#pragma once

#include <string>

namespace nodeccl {
namespace net {

// The numeric address of interface `ifname`: its first IPv4 address, else its first IPv6
// address that is not link-local. Throws kInvalidArgument naming the interface (and listing
// this machine's interfaces) when there is no such interface or it has no usable address.
// `who` starts the message ("rank 2").
std::string interfaceAddress(const std::string& ifname, const std::string& who);

// The name of the interface that has numeric address `host` ("lo", "eth0"), or "" when none
// does (a wildcard, or an address of another machine).
std::string interfaceOf(const std::string& host);

}  // namespace net
}  // namespace nodeccl
