// SPDX-License-Identifier: Apache-2.0
// Network interfaces by name (see interface.h): one walk of getifaddrs() per call.
#include "transport/tcp/interface.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <vector>

#include "common/error.h"
#include "transport/tcp/socket.h"

namespace nodeccl {
namespace net {
namespace {

struct IfAddr {
  std::string name;
  std::string host;  // numeric
  int family = 0;
  bool linkLocal = false;
};

// Every address of every interface that is up or not (the caller decides), IPv4 and IPv6.
std::vector<IfAddr> listAddresses() {
  std::vector<IfAddr> out;
  ifaddrs* head = nullptr;
  if (getifaddrs(&head) != 0) {
    throw Error(ErrorCode::kIo, strcat("getifaddrs() failed: ", errnoText(errno),
                                       "; set listenHost to an address of this machine instead"));
  }
  for (ifaddrs* a = head; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr) continue;
    int fam = a->ifa_addr->sa_family;
    if (fam != AF_INET && fam != AF_INET6) continue;
    socklen_t len = fam == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    char buf[NI_MAXHOST];
    if (getnameinfo(a->ifa_addr, len, buf, sizeof(buf), nullptr, 0, NI_NUMERICHOST) != 0) continue;
    IfAddr e{a->ifa_name, buf, fam, false};
    if (fam == AF_INET6) {
      const auto* s6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
      e.linkLocal = IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr);
    }
    out.push_back(std::move(e));
  }
  freeifaddrs(head);
  return out;
}

}  // namespace

std::string interfaceAddress(const std::string& ifname, const std::string& who) {
  std::vector<IfAddr> all = listAddresses();
  const IfAddr* v6 = nullptr;
  const bool exists = if_nametoindex(ifname.c_str()) != 0;
  std::string names;
  for (const IfAddr& a : all) {
    if (names.find(" " + a.name + ",") == std::string::npos) names += " " + a.name + ",";
    if (a.name != ifname) continue;
    if (a.family == AF_INET) return a.host;
    if (!a.linkLocal && v6 == nullptr) v6 = &a;
  }
  if (v6 != nullptr) return v6->host;
  if (!names.empty()) names.pop_back();
  throw Error(ErrorCode::kInvalidArgument,
              strcat(who, ": NODECCL_SOCKET_IFNAME='", ifname, "': ",
                     exists ? "the interface has no IPv4 or global IPv6 address"
                            : "there is no interface of that name",
                     " on this machine (interfaces with addresses:", names,
                     "); name one of those, or unset it to use the interface that reaches the "
                     "master address"));
}

std::string interfaceOf(const std::string& host) {
  for (const IfAddr& a : listAddresses()) {
    if (a.host == host) return a.name;
  }
  return "";
}

}  // namespace net
}  // namespace nodeccl
