// A private network namespace for the BPF tests, so that bpf_fib_lookup()
// answers from routes and neighbours the test controls. It lives as long as
// the test process: nothing to clean up on the host.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "lab_topology.h"
#include "packet.h"

namespace tollgate::test {

// The test topology (inside the private namespace), all of it from
// tools/lab-topology (topology::k*):
//   kGwClientLink (client side, XDP ingress)  kGwClientV4/24   kGwClientV6/64
//   kGwBackendLink (backend side)             kGwBackendV4/24  kGwBackendV6/64
// with MACs kBpfGwClientMac and kBpfGwBackendMac. Permanent neighbour
// entries: the backends kBpfBackendsV4/V6 (hosts 11..14) with
// kBpfBackendMacs on the backend side; on the client side the host
// kBpfClientSideHostV4/V6 (host 21) and the test client kBpfClientV4/V6.
struct TestNetwork {
  static constexpr Mac kClientSideMac = parse_mac(topology::kBpfGwClientMac);
  static constexpr Mac kBackendSideMac = parse_mac(topology::kBpfGwBackendMac);
  static constexpr Mac kClientMac = parse_mac(topology::kBpfClientMac);
  static constexpr Mac kClientSideHostMac = parse_mac(topology::kBpfClientSideHostMac);
  int client_ifindex = 0;
  int backend_ifindex = 0;

  // Moves this process into a new network namespace and builds the
  // topology. Returns an empty string, or what failed.
  std::string create();
  // The MAC of backend `number` (into kBpfBackendsV4/V6).
  static Mac backend_mac(int number);
};

// The IPv4 address `host` into the prefix `cidr` ("a.b.c.d/n", host bits
// ignored): ipv4_host("198.18.1.1/24", 11) is 198.18.1.11.
std::string ipv4_host(std::string_view cidr, uint32_t host);

}  // namespace tollgate::test
