#include "netns.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <net/if.h>
#include <sched.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace tollgate::test {

using namespace topology;

static_assert(kBpfBackendMacs.size() == kBpfBackendsV4.size() && kBpfBackendMacs.size() == kBpfBackendsV6.size(),
              "tools/lab-topology: a MAC for every bpf test backend");

Mac TestNetwork::backend_mac(int number) { return parse_mac(kBpfBackendMacs.at(static_cast<size_t>(number))); }

std::string ipv4_host(std::string_view cidr, uint32_t host) {
  const size_t slash = cidr.find('/');
  const std::string address(cidr.substr(0, slash));
  const int length = slash == std::string_view::npos ? 32 : std::stoi(std::string(cidr.substr(slash + 1)));
  in_addr parsed{};
  if (inet_pton(AF_INET, address.c_str(), &parsed) != 1 || length < 0 || length > 32)
    throw std::invalid_argument(fmt::format("not an IPv4 prefix: '{}'", cidr));
  const uint32_t mask = length == 0 ? 0 : ~uint32_t{0} << (32 - length);
  parsed.s_addr = htonl((ntohl(parsed.s_addr) & mask) + host);
  char text[INET_ADDRSTRLEN];
  return inet_ntop(AF_INET, &parsed, text, sizeof(text));
}

std::string TestNetwork::create() {
  if (unshare(CLONE_NEWNET) != 0) return fmt::format("unshare(CLONE_NEWNET): {}", std::strerror(errno));
  // /proc/sys/net is the opener's namespace's.
  for (const char* sysctl : {"/proc/sys/net/ipv4/conf/all/forwarding", "/proc/sys/net/ipv6/conf/all/forwarding"}) {
    FILE* file = std::fopen(sysctl, "w");
    if (!file || std::fputs("1", file) < 0 || std::fclose(file) != 0)
      return fmt::format("{}: {}", sysctl, std::strerror(errno));
  }
  // One `ip -batch` for the whole topology: a test makes it anew each time.
  std::vector<std::string> commands = {
      "link set lo up",
      fmt::format("link add {} address {} type veth peer name {}", kGwClientLink, kBpfGwClientMac, kBpfClientPeer),
      fmt::format("link add {} address {} type veth peer name {}", kGwBackendLink, kBpfGwBackendMac, kBpfBackendPeer),
  };
  for (const char* link : {kGwClientLink, kBpfClientPeer, kGwBackendLink, kBpfBackendPeer})
    commands.push_back(fmt::format("link set {} up", link));
  commands.push_back(fmt::format("addr add {}/{} dev {}", kGwClientV4, kLanPrefixV4, kGwClientLink));
  commands.push_back(fmt::format("addr add {}/{} dev {}", kGwBackendV4, kLanPrefixV4, kGwBackendLink));
  commands.push_back(fmt::format("addr add {}/{} dev {} nodad", kGwClientV6, kLanPrefixV6, kGwClientLink));
  commands.push_back(fmt::format("addr add {}/{} dev {} nodad", kGwBackendV6, kLanPrefixV6, kGwBackendLink));
  auto neighbour = [&commands](const char* address, const char* mac, const char* link) {
    commands.push_back(fmt::format("neigh replace {} lladdr {} nud permanent dev {}", address, mac, link));
  };
  for (size_t i = 0; i < kBpfBackendsV4.size(); ++i) neighbour(kBpfBackendsV4[i], kBpfBackendMacs[i], kGwBackendLink);
  for (size_t i = 0; i < kBpfBackendsV6.size(); ++i) neighbour(kBpfBackendsV6[i], kBpfBackendMacs[i], kGwBackendLink);
  neighbour(kBpfClientSideHostV4, kBpfClientSideHostMac, kGwClientLink);
  neighbour(kBpfClientSideHostV6, kBpfClientSideHostMac, kGwClientLink);
  neighbour(kBpfClientV4, kBpfClientMac, kGwClientLink);
  neighbour(kBpfClientV6, kBpfClientMac, kGwClientLink);
  FILE* ip = popen("ip -batch - >/dev/null 2>&1", "w");
  if (!ip) return fmt::format("ip -batch: {}", std::strerror(errno));
  for (const auto& command : commands) std::fprintf(ip, "%s\n", command.c_str());
  if (pclose(ip) != 0) return "ip -batch failed: the test topology is incomplete";
  client_ifindex = static_cast<int>(if_nametoindex(kGwClientLink));
  backend_ifindex = static_cast<int>(if_nametoindex(kGwBackendLink));
  if (!client_ifindex || !backend_ifindex) return "test interfaces missing after creation";
  return {};
}

}  // namespace tollgate::test
