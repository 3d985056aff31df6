// A private network namespace for the BPF tests, so that bpf_fib_lookup()
// answers from routes and neighbours the test controls. It lives as long as
// the test process: nothing to clean up on the host.
#pragma once

#include <string>

#include "packet.h"

namespace tollgate::test {

// Addresses of the test topology (inside the private namespace):
//   tgc0 (client side, XDP ingress)  198.18.0.1/24   2001:db8::1/64
//   tgb0 (backend side)              198.18.1.1/24   2001:db8:1::1/64
// Backends 198.18.1.11-14 and 2001:db8:1::11-14 have permanent neighbour
// entries with MAC 02:00:00:00:01:NN (NN = 11..14); 198.18.0.21 and
// 2001:db8::21 sit on the client side with MAC 02:00:00:00:00:21, and so
// do the test clients 198.18.0.100 and 2001:db8::100 with kClientMac.
struct TestNetwork {
  static constexpr Mac kClientSideMac{0x02, 0, 0, 0, 0x00, 0x01};
  static constexpr Mac kBackendSideMac{0x02, 0, 0, 0, 0x01, 0x01};
  static constexpr Mac kClientMac{0x02, 0, 0, 0, 0xc1, 0x01};
  int client_ifindex = 0;
  int backend_ifindex = 0;

  // Moves this process into a new network namespace and builds the
  // topology. Returns an empty string, or what failed.
  std::string create();
  static Mac backend_mac(int host_number);
};

}  // namespace tollgate::test
