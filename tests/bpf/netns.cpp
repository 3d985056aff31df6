#include "netns.h"

#include <fmt/format.h>
#include <net/if.h>
#include <sched.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace tollgate::test {

Mac TestNetwork::backend_mac(int host_number) {
  // Hosts 11..14 on the backend side, 21 on the client side.
  uint8_t hex = static_cast<uint8_t>((host_number / 10) << 4 | host_number % 10);
  return Mac{0x02, 0, 0, 0, static_cast<uint8_t>(host_number >= 20 ? 0x00 : 0x01), hex};
}

std::string TestNetwork::create() {
  if (unshare(CLONE_NEWNET) != 0) return fmt::format("unshare(CLONE_NEWNET): {}", std::strerror(errno));
  const std::vector<std::string> commands = {
      "ip link set lo up",
      "ip link add tgc0 address 02:00:00:00:00:01 type veth peer name tgc1",
      "ip link add tgb0 address 02:00:00:00:01:01 type veth peer name tgb1",
      "ip link set tgc0 up",
      "ip link set tgc1 up",
      "ip link set tgb0 up",
      "ip link set tgb1 up",
      "ip addr add 198.18.0.1/24 dev tgc0",
      "ip addr add 198.18.1.1/24 dev tgb0",
      "ip -6 addr add 2001:db8::1/64 dev tgc0 nodad",
      "ip -6 addr add 2001:db8:1::1/64 dev tgb0 nodad",
      "sysctl -qw net.ipv4.conf.all.forwarding=1",
      "sysctl -qw net.ipv6.conf.all.forwarding=1",
      "ip neigh replace 198.18.1.11 lladdr 02:00:00:00:01:11 nud permanent dev tgb0",
      "ip neigh replace 198.18.1.12 lladdr 02:00:00:00:01:12 nud permanent dev tgb0",
      "ip neigh replace 198.18.1.13 lladdr 02:00:00:00:01:13 nud permanent dev tgb0",
      "ip neigh replace 198.18.1.14 lladdr 02:00:00:00:01:14 nud permanent dev tgb0",
      "ip neigh replace 2001:db8:1::11 lladdr 02:00:00:00:01:11 nud permanent dev tgb0",
      "ip neigh replace 2001:db8:1::12 lladdr 02:00:00:00:01:12 nud permanent dev tgb0",
      "ip neigh replace 2001:db8:1::13 lladdr 02:00:00:00:01:13 nud permanent dev tgb0",
      "ip neigh replace 2001:db8:1::14 lladdr 02:00:00:00:01:14 nud permanent dev tgb0",
      "ip neigh replace 198.18.0.21 lladdr 02:00:00:00:00:21 nud permanent dev tgc0",
      "ip neigh replace 2001:db8::21 lladdr 02:00:00:00:00:21 nud permanent dev tgc0",
      "ip neigh replace 198.18.0.100 lladdr 02:00:00:00:c1:01 nud permanent dev tgc0",
      "ip neigh replace 2001:db8::100 lladdr 02:00:00:00:c1:01 nud permanent dev tgc0",
  };
  for (const auto& command : commands) {
    std::string quiet = command + " >/dev/null 2>&1";
    if (std::system(quiet.c_str()) != 0) return fmt::format("'{}' failed", command);
  }
  client_ifindex = static_cast<int>(if_nametoindex("tgc0"));
  backend_ifindex = static_cast<int>(if_nametoindex("tgb0"));
  if (!client_ifindex || !backend_ifindex) return "test interfaces missing after creation";
  return {};
}

}  // namespace tollgate::test
