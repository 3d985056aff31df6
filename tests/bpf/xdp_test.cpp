// The XDP program, loaded through the real loader and configured through
// the real Dataplane, fed packets with BPF_PROG_TEST_RUN.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "datapath_fixture.h"
#include "flows.h"

using namespace tollgate;
using namespace tollgate::test;

namespace {

using XdpTest = DataPathTest;

// --- new flows are rewritten to the selected backend ----------------------

struct ForwardCase {
  const char* name;
  const Addresses* family;
  uint8_t protocol;
};
void PrintTo(const ForwardCase& test_case, std::ostream* out) { *out << test_case.name; }

class XdpForwardTest : public XdpTest, public ::testing::WithParamInterface<ForwardCase> {};

TEST_P(XdpForwardTest, NewFlowIsRewrittenToTheSelectedBackend) {
  const auto& family = *GetParam().family;
  const uint8_t protocol = GetParam().protocol;
  const auto spec = service_spec(family, protocol, 3);
  apply(spec);

  PacketSpec input = client_packet(family, protocol);
  input.payload = Bytes{'G', 'E', 'T', ' ', '/', '\r', '\n'};
  RunResult result = run(build_packet(input));
  ASSERT_EQ(result.verdict, XDP_REDIRECT) << verdict_name(result.verdict);

  int backend = backend_of(family, result.data);
  ASSERT_GE(backend, 0) << "output goes to no backend of the service";
  ASSERT_LT(backend, 3);
  Bytes expected = expected_output(family, input, backend);
  EXPECT_EQ(result.data, expected) << hex_diff(expected, result.data);
  std::string why;
  EXPECT_TRUE(checksums_valid(result.data, &why)) << why;

  auto flow = flow_of(family, input);
  ASSERT_TRUE(flow) << "no connection tracking entry";
  EXPECT_EQ(flow->backend_index, dataplane_->backend_index(spec.address, spec.backends[backend].endpoint));
  EXPECT_EQ(flow->state, protocol == 6 ? TG_FLOW_TCP_SYN : TG_FLOW_UDP);
}

TEST_P(XdpForwardTest, VlanTaggedPacketLeavesUntagged) {
  const auto& family = *GetParam().family;
  const uint8_t protocol = GetParam().protocol;
  apply(service_spec(family, protocol, 3));

  for (std::vector<uint16_t> tags : {std::vector<uint16_t>{100}, std::vector<uint16_t>{100, 200}}) {
    PacketSpec input = client_packet(family, protocol, static_cast<uint16_t>(41000 + tags.size()));
    input.vlan_ids = tags;
    RunResult result = run(build_packet(input));
    ASSERT_EQ(result.verdict, XDP_REDIRECT) << verdict_name(result.verdict);
    int backend = backend_of(family, result.data);
    ASSERT_GE(backend, 0);
    Bytes expected = expected_output(family, input, backend);
    EXPECT_EQ(result.data, expected) << tags.size() << " tags\n" << hex_diff(expected, result.data);
  }
}

TEST_P(XdpForwardTest, BackendBehindTheIngressInterfaceIsSentWithXdpTx) {
  const auto& family = *GetParam().family;
  const uint8_t protocol = GetParam().protocol;
  ServiceSpec spec{service_address(family, protocol), TG_MAGLEV_DEFAULT_SIZE, {}};
  auto endpoint = Endpoint::parse(fmt::format("{}:9000", bracket(family, family.client_side_host)));
  ASSERT_TRUE(endpoint);
  spec.backends.push_back({*endpoint, 1});
  apply(spec);

  PacketSpec input = client_packet(family, protocol);
  RunResult result = run(build_packet(input));
  ASSERT_EQ(result.verdict, XDP_TX) << verdict_name(result.verdict);
  PacketSpec expected_spec = input;
  expected_spec.dst = family.client_side_host;
  expected_spec.dst_port = 9000;
  expected_spec.ttl -= 1;
  expected_spec.src_mac = TestNetwork::kClientSideMac;
  expected_spec.dst_mac = TestNetwork::kClientSideHostMac;
  Bytes expected = build_packet(expected_spec);
  EXPECT_EQ(result.data, expected) << hex_diff(expected, result.data);
}

TEST_P(XdpForwardTest, FlowKeepsItsBackendThroughChangesUntilItIsRemoved) {
  const auto& family = *GetParam().family;
  const uint8_t protocol = GetParam().protocol;
  auto spec = service_spec(family, protocol, 2);
  apply(spec);

  // Many flows, so that some land on each backend.
  std::map<uint16_t, int> chosen;
  for (uint16_t port = 42000; port < 42064; ++port) {
    RunResult result = run(build_packet(client_packet(family, protocol, port)));
    ASSERT_EQ(result.verdict, XDP_REDIRECT);
    chosen[port] = backend_of(family, result.data);
  }
  std::set<int> used;
  for (auto& [port, backend] : chosen) used.insert(backend);
  ASSERT_EQ(used, (std::set<int>{0, 1})) << "64 flows should reach both backends";

  // Backends added and weights changed: every tracked flow stays.
  spec.backends.push_back({backend_endpoint(family, 2), 5});
  spec.backends.push_back({backend_endpoint(family, 3), 7});
  spec.backends[0].weight = 3;
  apply(spec);
  for (auto& [port, backend] : chosen) {
    PacketSpec next = client_packet(family, protocol, port);
    next.tcp_flags = kTcpAck;
    RunResult result = run(build_packet(next));
    ASSERT_EQ(result.verdict, XDP_REDIRECT);
    EXPECT_EQ(backend_of(family, result.data), backend) << "flow from port " << port << " moved";
  }

  // Backend 0 removed: its flows move (to a remaining backend), the others stay.
  spec.backends.erase(spec.backends.begin());
  apply(spec);
  for (auto& [port, backend] : chosen) {
    PacketSpec next = client_packet(family, protocol, port);
    next.tcp_flags = kTcpAck;
    RunResult result = run(build_packet(next));
    ASSERT_EQ(result.verdict, XDP_REDIRECT);
    int now = backend_of(family, result.data);
    if (backend == 0) {
      EXPECT_TRUE(now >= 1 && now <= 3) << "flow from port " << port << " went to " << now;
      Bytes expected = expected_output(family, next, now);
      EXPECT_EQ(result.data, expected) << hex_diff(expected, result.data);
    } else {
      EXPECT_EQ(now, backend) << "flow from port " << port << " moved";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, XdpForwardTest,
                         ::testing::Values(ForwardCase{"Ipv4Tcp", &kIpv4, 6}, ForwardCase{"Ipv4Udp", &kIpv4, 17},
                                           ForwardCase{"Ipv6Tcp", &kIpv6, 6}, ForwardCase{"Ipv6Udp", &kIpv6, 17}),
                         [](const auto& info) { return std::string(info.param.name); });

// --- backend states ---------------------------------------------------------

TEST_F(XdpTest, DownBackendLosesItsFlowsDrainingBackendKeepsThemButGetsNoNewOnes) {
  auto spec = service_spec(kIpv4, 6, 2);
  apply(spec);
  std::map<uint16_t, int> chosen;
  for (uint16_t port = 43000; port < 43064; ++port)
    chosen[port] = backend_of(kIpv4, run(build_packet(client_packet(kIpv4, 6, port))).data);

  spec.backends[0].state = BackendState::draining;
  apply(spec);
  for (auto& [port, backend] : chosen) {
    PacketSpec next = client_packet(kIpv4, 6, port);
    next.tcp_flags = kTcpAck;
    EXPECT_EQ(backend_of(kIpv4, run(build_packet(next)).data), backend) << "port " << port;
  }
  for (uint16_t port = 44000; port < 44064; ++port)
    EXPECT_EQ(backend_of(kIpv4, run(build_packet(client_packet(kIpv4, 6, port))).data), 1)
        << "new flow from port " << port << " went to the draining backend";

  spec.backends[0].state = BackendState::down;
  apply(spec);
  for (auto& [port, backend] : chosen) {
    PacketSpec next = client_packet(kIpv4, 6, port);
    next.tcp_flags = kTcpAck;
    EXPECT_EQ(backend_of(kIpv4, run(build_packet(next)).data), 1) << "port " << port;
  }
}

// A SYN keeps its tracked flow's backend only as a retransmission of that
// flow's own SYN to a backend that is up. A client port come round (the flow
// established, or closing after a FIN) or a SYN towards a draining backend
// opens a new connection: selected afresh, the draining backend excluded,
// and the rest of its handshake follows it; the old connection's packets
// stay with the draining backend.
TEST_F(XdpTest, ASynOnAReusedTupleIsSelectedAfresh) {
  auto spec = service_spec(kIpv4, 6, 2);
  apply(spec);
  // Flows of backend 0 in each state a SYN can find: SYN sent, established, closing.
  std::vector<uint16_t> ports;
  for (uint16_t port = 46000; port < 46400 && ports.size() < 24; ++port)
    if (backend_of(kIpv4, run(build_packet(client_packet(kIpv4, 6, port))).data) == 0) ports.push_back(port);
  ASSERT_EQ(ports.size(), 24u) << "backend 0 took fewer than 24 of 400 flows";
  auto send = [&](uint16_t port, uint8_t flags) {
    PacketSpec packet = client_packet(kIpv4, 6, port);
    packet.tcp_flags = flags;
    return backend_of(kIpv4, run(build_packet(packet)).data);
  };
  const std::vector<uint16_t> syn_sent(ports.begin(), ports.begin() + 8);
  const std::vector<uint16_t> established(ports.begin() + 8, ports.begin() + 16);
  const std::vector<uint16_t> closing(ports.begin() + 16, ports.end());
  for (uint16_t port : established) ASSERT_EQ(send(port, kTcpAck), 0);
  for (uint16_t port : closing) {
    ASSERT_EQ(send(port, kTcpAck), 0);
    ASSERT_EQ(send(port, kTcpAck | kTcpFin), 0);
    ASSERT_EQ(flow_of(kIpv4, client_packet(kIpv4, 6, port))->state, TG_FLOW_TCP_CLOSING);
  }
  // While backend 0 is up its own SYN's retransmission stays with it.
  for (uint16_t port : syn_sent) EXPECT_EQ(send(port, kTcpSyn), 0) << "port " << port;

  spec.backends[0].state = BackendState::draining;
  apply(spec);
  const uint64_t new_flows = service_counters(spec.address).new_flows;
  for (uint16_t port : established) EXPECT_EQ(send(port, kTcpAck), 0) << "established flow left the draining backend";
  for (uint16_t port : syn_sent) {
    EXPECT_EQ(send(port, kTcpSyn), 1) << "a SYN of port " << port << " went on to the draining backend";
    EXPECT_EQ(send(port, kTcpAck), 1) << "port " << port;
  }
  for (const auto* reused : {&established, &closing})
    for (uint16_t port : *reused) {
      EXPECT_EQ(send(port, kTcpSyn), 1) << "a SYN reusing port " << port << " went to the draining backend";
      EXPECT_EQ(flow_of(kIpv4, client_packet(kIpv4, 6, port))->state, TG_FLOW_TCP_SYN);
      EXPECT_EQ(send(port, kTcpAck), 1) << "the handshake of port " << port << " went back to the old flow's backend";
    }
  EXPECT_EQ(service_counters(spec.address).new_flows - new_flows, 24u) << "each new connection is a new flow";
}

// What a drain waits for (active_flow_counts) follows the data path's own
// rule (maps/tollgate_flow.h): its flows are those a packet would keep.
class ActiveFlowTest : public XdpTest {
 protected:
  // Established flows from ports [first, first + count): how many each
  // backend (number into family.backends) got.
  std::map<int, uint64_t> establish(uint16_t first, uint16_t count) {
    std::map<int, uint64_t> per_backend;
    for (uint16_t port = first; port < first + count; ++port) {
      PacketSpec packet = client_packet(kIpv4, 6, port);
      run(build_packet(packet));
      packet.tcp_flags = kTcpAck;
      ++per_backend[backend_of(kIpv4, run(build_packet(packet)).data)];
    }
    return per_backend;
  }

  uint64_t active_flows(const ServiceAddress& service, int number) {
    auto counts = active_flow_counts(datapath_->maps());
    EXPECT_TRUE(counts) << counts.error().message;
    auto index = dataplane_->backend_index(service, backend_endpoint(kIpv4, number));
    EXPECT_TRUE(index) << "backend " << number;
    if (!counts || !index) return 0;
    auto found = counts->find(*index);
    return found == counts->end() ? 0 : found->second;
  }
};

TEST_F(ActiveFlowTest, ADrainingBackendKeepsItsActiveFlowsADownOneHasNone) {
  auto spec = service_spec(kIpv4, 6, 2);
  apply(spec);
  auto per_backend = establish(43000, 32);
  ASSERT_GT(per_backend[0], 0u);
  ASSERT_GT(per_backend[1], 0u);
  EXPECT_EQ(active_flows(spec.address, 0), per_backend[0]);
  EXPECT_EQ(active_flows(spec.address, 1), per_backend[1]);

  spec.backends[0].state = BackendState::draining;
  apply(spec);
  EXPECT_EQ(active_flows(spec.address, 0), per_backend[0]);

  // Its flows still point at it, but their next packet moves them.
  spec.backends[0].state = BackendState::down;
  apply(spec);
  EXPECT_EQ(active_flows(spec.address, 0), 0u);
  EXPECT_EQ(active_flows(spec.address, 1), per_backend[1]);
}

// A port's own service added beside the wildcard that steered its flows:
// their next packet goes to the new service, so the wildcard's backends no
// longer hold them.
TEST_F(ActiveFlowTest, FlowsTheirAddressNowSendsToAnotherServiceAreNotActive) {
  auto wildcard = service_spec(kIpv4, 6, 2);
  wildcard.address.endpoint.port = 0;
  apply(wildcard);
  establish(43000, 8);
  EXPECT_EQ(active_flows(wildcard.address, 0) + active_flows(wildcard.address, 1), 8u);

  ServiceSpec port_80{service_address(kIpv4, 6), TG_MAGLEV_DEFAULT_SIZE, {}};
  port_80.backends.push_back({backend_endpoint(kIpv4, 2), 1});
  apply(port_80);
  EXPECT_EQ(active_flows(wildcard.address, 0), 0u);
  EXPECT_EQ(active_flows(wildcard.address, 1), 0u);

  PacketSpec next = client_packet(kIpv4, 6, 43000);
  next.tcp_flags = kTcpAck;
  EXPECT_EQ(backend_of(kIpv4, run(build_packet(next)).data), 2) << "the data path agrees";
}

TEST_F(XdpTest, ServiceWithoutUsableBackendDropsAndCounts) {
  auto spec = service_spec(kIpv4, 6, 1);
  spec.backends[0].state = BackendState::down;
  apply(spec);
  DropCounts before = drops();
  RunResult result = run(build_packet(client_packet(kIpv4, 6)));
  EXPECT_EQ(result.verdict, XDP_DROP) << verdict_name(result.verdict);
  EXPECT_EQ(drops()[TG_DROP_NO_BACKEND], before[TG_DROP_NO_BACKEND] + 1);
  EXPECT_EQ(flow_count(), 0u);
}

TEST_F(XdpTest, RemovedServicePassesAgain) {
  auto spec = service_spec(kIpv4, 17, 2);
  apply(spec);
  Bytes packet = build_packet(client_packet(kIpv4, 17));
  EXPECT_EQ(run(packet).verdict, XDP_REDIRECT);
  ASSERT_TRUE(dataplane_->remove_service(spec.address));
  RunResult result = run(packet);
  EXPECT_EQ(result.verdict, XDP_PASS) << verdict_name(result.verdict);
  EXPECT_EQ(result.data, packet);
}

TEST_F(XdpTest, PortWildcardServiceMatchesEveryPort) {
  auto spec = service_spec(kIpv6, 6, 2);
  spec.address.endpoint.port = 0;
  apply(spec);
  for (uint16_t port : {22, 80, 443, 65535}) {
    PacketSpec input = client_packet(kIpv6, 6);
    input.dst_port = port;
    RunResult result = run(build_packet(input));
    ASSERT_EQ(result.verdict, XDP_REDIRECT) << "port " << port;
    int backend = backend_of(kIpv6, result.data);
    ASSERT_GE(backend, 0);
    Bytes expected = expected_output(kIpv6, input, backend);
    EXPECT_EQ(result.data, expected) << hex_diff(expected, result.data);
  }
}

// --- idle timeouts --------------------------------------------------------

TEST_F(XdpTest, IdleFlowsExpireByState) {
  FlowTimeouts timeouts;
  ASSERT_TRUE(dataplane_->set_timeouts(timeouts));
  auto udp = service_spec(kIpv4, 17, 3);
  auto tcp = service_spec(kIpv4, 6, 3);
  apply(udp);
  apply(tcp);

  // UDP: idle longer than its timeout -> selected anew (a new flow).
  PacketSpec datagram = client_packet(kIpv4, 17);
  run(build_packet(datagram));
  run(build_packet(datagram));
  EXPECT_EQ(service_counters(udp.address).new_flows, 1u);
  age_flow(kIpv4, datagram, timeouts.udp - std::chrono::seconds(5));
  run(build_packet(datagram));
  EXPECT_EQ(service_counters(udp.address).new_flows, 1u) << "expired before its timeout";
  age_flow(kIpv4, datagram, timeouts.udp + std::chrono::seconds(1));
  run(build_packet(datagram));
  EXPECT_EQ(service_counters(udp.address).new_flows, 2u) << "did not expire after its timeout";

  // TCP established: survives an idle time that ends a closing flow.
  PacketSpec established = client_packet(kIpv4, 6, 45000);
  run(build_packet(established));
  established.tcp_flags = kTcpAck;
  run(build_packet(established));
  ASSERT_EQ(flow_of(kIpv4, established)->state, TG_FLOW_TCP_ESTABLISHED);

  PacketSpec closing = client_packet(kIpv4, 6, 45001);
  run(build_packet(closing));
  closing.tcp_flags = kTcpAck | kTcpFin;
  run(build_packet(closing));
  ASSERT_EQ(flow_of(kIpv4, closing)->state, TG_FLOW_TCP_CLOSING);
  EXPECT_EQ(service_counters(tcp.address).new_flows, 2u);

  const auto idle = timeouts.tcp_closing + std::chrono::seconds(1);
  age_flow(kIpv4, established, idle);
  age_flow(kIpv4, closing, idle);
  run(build_packet(established));
  EXPECT_EQ(service_counters(tcp.address).new_flows, 2u) << "established flow expired after " << idle.count() << " s";
  closing.tcp_flags = kTcpAck;
  run(build_packet(closing));
  EXPECT_EQ(service_counters(tcp.address).new_flows, 3u) << "closing flow kept after " << idle.count() << " s";

  age_flow(kIpv4, established, timeouts.tcp_established + std::chrono::seconds(1));
  run(build_packet(established));
  EXPECT_EQ(service_counters(tcp.address).new_flows, 4u) << "established flow kept past its timeout";
}

// --- not for a service: passed untouched ----------------------------------

TEST_F(XdpTest, PacketsNotForAServicePassUnchanged) {
  apply(service_spec(kIpv4, 6, 3));
  apply(service_spec(kIpv6, 17, 3));

  std::vector<std::pair<std::string, Bytes>> packets;
  auto add = [&](std::string name, PacketSpec spec) { packets.emplace_back(std::move(name), build_packet(spec)); };
  PacketSpec spec = client_packet(kIpv4, 6);
  spec.dst = kIpv4.other_address;
  add("IPv4 TCP to another address", spec);
  spec = client_packet(kIpv4, 6);
  spec.dst_port = 81;
  add("IPv4 TCP to the service address, other port", spec);
  spec = client_packet(kIpv4, 17);
  add("IPv4 UDP to a TCP service", spec);
  spec = client_packet(kIpv6, 6);
  add("IPv6 TCP to a UDP service", spec);
  spec = client_packet(kIpv6, 17);
  spec.dst = kIpv6.other_address;
  add("IPv6 UDP to another address", spec);
  spec = client_packet(kIpv4, 17);
  spec.protocol = 1;  // ICMP: the UDP builder's bytes serve as an echo body
  spec.dst = kIpv4.service;
  add("IPv4 ICMP to the service address", spec);

  Bytes arp(42, 0);
  arp[0] = arp[1] = arp[2] = arp[3] = arp[4] = arp[5] = 0xff;
  put16(arp, 12, 0x0806);
  packets.emplace_back("ARP", arp);

  DropCounts before = drops();
  for (const auto& [name, packet] : packets) {
    RunResult result = run(packet);
    EXPECT_EQ(result.verdict, XDP_PASS) << name << ": " << verdict_name(result.verdict);
    EXPECT_EQ(result.data, packet) << name << "\n" << hex_diff(packet, result.data);
  }
  EXPECT_EQ(drops(), before);
  EXPECT_EQ(flow_count(), 0u);
}

// --- malformed packets: dropped and counted by reason ---------------------

struct MalformedCase {
  const char* name;
  bool ipv6;
  uint8_t protocol;
  std::function<void(Bytes&)> mutate;  // on a valid frame from client_packet()
  tg_drop_reason reason;
  bool destination_readable;  // the same to a non-service address passes
};

constexpr size_t kL3 = 14;
constexpr size_t kL4v4 = 34;
constexpr size_t kL4v6 = 54;

void insert_after(Bytes& frame, size_t offset, const Bytes& bytes) {
  frame.insert(frame.begin() + static_cast<long>(offset), bytes.begin(), bytes.end());
}

std::vector<MalformedCase> malformed_cases() {
  return {
      {"vlan tag truncated", false, 6,
       [](Bytes& f) {
         f.resize(16);
         put16(f, 12, 0x8100);
       },
       TG_DROP_ETH_TRUNCATED, false},
      {"three vlan tags", false, 6,
       [](Bytes& f) {
         insert_after(f, 12, {0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x81, 0x00, 0, 3});
       },
       TG_DROP_VLAN_TOO_DEEP, false},
      {"ipv4 header truncated", false, 6, [](Bytes& f) { f.resize(kL3 + 19); }, TG_DROP_IPV4_TRUNCATED, false},
      {"ipv4 ihl below 5", false, 6, [](Bytes& f) { f[kL3] = 0x44; }, TG_DROP_IPV4_BAD_IHL, true},
      {"ipv4 total length below header", false, 6, [](Bytes& f) { put16(f, kL3 + 2, 16); }, TG_DROP_IPV4_BAD_IHL, true},
      {"ipv4 total length beyond frame", false, 6, [](Bytes& f) { put16(f, kL3 + 2, static_cast<uint16_t>(f.size())); },
       TG_DROP_IPV4_TRUNCATED, true},
      {"ipv4 options", false, 6,
       [](Bytes& f) {
         insert_after(f, kL4v4, {1, 1, 1, 0});  // NOP NOP NOP EOL
         f[kL3] = 0x46;
         put16(f, kL3 + 2, static_cast<uint16_t>(get16(f, kL3 + 2) + 4));
       },
       TG_DROP_IPV4_OPTIONS, true},
      {"ipv4 later fragment, its first never seen", false, 17,
       [](Bytes& f) {
         put16(f, kL3 + 6, 0x0001);
         f.resize(kL4v4 + 4);
         put16(f, kL3 + 2, 24);
       },
       TG_DROP_IPV4_FRAGMENT, true},
      {"tcp header truncated", false, 6,
       [](Bytes& f) {
         f.resize(kL4v4 + 12);
         put16(f, kL3 + 2, 32);
       },
       TG_DROP_TCP_TRUNCATED, true},
      {"tcp data offset below 5", false, 6, [](Bytes& f) { f[kL4v4 + 12] = 4 << 4; }, TG_DROP_TCP_TRUNCATED, true},
      {"tcp data offset beyond packet", false, 6, [](Bytes& f) { f[kL4v4 + 12] = 15 << 4; }, TG_DROP_TCP_TRUNCATED,
       true},
      {"tcp header cut by ip total length", false, 6, [](Bytes& f) { put16(f, kL3 + 2, 20 + 10); },
       TG_DROP_TCP_TRUNCATED, true},
      {"udp header truncated", false, 17,
       [](Bytes& f) {
         f.resize(kL4v4 + 6);
         put16(f, kL3 + 2, 26);
       },
       TG_DROP_UDP_TRUNCATED, true},
      {"udp length beyond payload", false, 17, [](Bytes& f) { put16(f, kL4v4 + 4, 200); }, TG_DROP_UDP_TRUNCATED, true},
      {"udp length below header", false, 17, [](Bytes& f) { put16(f, kL4v4 + 4, 7); }, TG_DROP_UDP_TRUNCATED, true},
      {"ipv4 ttl 1", false, 6, [](Bytes& f) { f[kL3 + 8] = 1; }, TG_DROP_TTL_EXCEEDED, false},
      {"ipv6 header truncated", true, 6, [](Bytes& f) { f.resize(kL3 + 39); }, TG_DROP_IPV6_TRUNCATED, false},
      {"ipv6 payload beyond frame", true, 6, [](Bytes& f) { put16(f, kL3 + 4, static_cast<uint16_t>(f.size())); },
       TG_DROP_IPV6_TRUNCATED, true},
      {"ipv6 hop-by-hop options", true, 6,
       [](Bytes& f) {
         insert_after(f, kL4v6, {6, 0, 1, 4, 0, 0, 0, 0});  // next TCP, PadN
         f[kL3 + 6] = 0;
         put16(f, kL3 + 4, static_cast<uint16_t>(get16(f, kL3 + 4) + 8));
       },
       TG_DROP_IPV6_EXT_HEADER, true},
      {"ipv6 routing header", true, 17,
       [](Bytes& f) {
         insert_after(f, kL4v6, {17, 0, 0, 0, 0, 0, 0, 0});
         f[kL3 + 6] = 43;
         put16(f, kL3 + 4, static_cast<uint16_t>(get16(f, kL3 + 4) + 8));
       },
       TG_DROP_IPV6_EXT_HEADER, true},
      {"ipv6 destination options", true, 6,
       [](Bytes& f) {
         insert_after(f, kL4v6, {6, 0, 1, 4, 0, 0, 0, 0});
         f[kL3 + 6] = 60;
         put16(f, kL3 + 4, static_cast<uint16_t>(get16(f, kL3 + 4) + 8));
       },
       TG_DROP_IPV6_EXT_HEADER, true},
      {"ipv6 later fragment, its first never seen", true, 17,
       [](Bytes& f) {
         insert_after(f, kL4v6, {17, 0, 0, 8, 0, 0, 0, 42});  // offset 8 bytes, the last
         f[kL3 + 6] = 44;
         put16(f, kL3 + 4, static_cast<uint16_t>(get16(f, kL3 + 4) + 8));
       },
       TG_DROP_IPV6_FRAGMENT, true},
      {"ipv6 fragment header truncated", true, 17,
       [](Bytes& f) {
         f.resize(kL4v6 + 4);
         f[kL3 + 6] = 44;
         put16(f, kL3 + 4, 4);
       },
       TG_DROP_IPV6_TRUNCATED, true},
      {"ipv6 fragment of a routing header", true, 17,
       [](Bytes& f) {
         insert_after(f, kL4v6, {43, 0, 0, 1, 0, 0, 0, 42});  // first fragment, more follow
         f[kL3 + 6] = 44;
         put16(f, kL3 + 4, static_cast<uint16_t>(get16(f, kL3 + 4) + 8));
       },
       TG_DROP_IPV6_EXT_HEADER, true},
      {"ipv6 tcp header truncated", true, 6,
       [](Bytes& f) {
         f.resize(kL4v6 + 8);
         put16(f, kL3 + 4, 8);
       },
       TG_DROP_TCP_TRUNCATED, true},
      {"ipv6 udp header truncated", true, 17,
       [](Bytes& f) {
         f.resize(kL4v6 + 4);
         put16(f, kL3 + 4, 4);
       },
       TG_DROP_UDP_TRUNCATED, true},
      {"ipv6 udp without checksum", true, 17, [](Bytes& f) { put16(f, kL4v6 + 6, 0); }, TG_DROP_UDP6_ZERO_CHECKSUM,
       true},
      {"ipv6 hop limit 1", true, 17, [](Bytes& f) { f[kL3 + 7] = 1; }, TG_DROP_TTL_EXCEEDED, false},
  };
}

TEST_F(XdpTest, MalformedPacketsToAServiceAreDroppedAndCountedByReason) {
  for (const Addresses* family : {&kIpv4, &kIpv6})
    for (uint8_t protocol : {6, 17}) apply(service_spec(*family, protocol, 3));

  for (const auto& test_case : malformed_cases()) {
    SCOPED_TRACE(test_case.name);
    const Addresses& family = test_case.ipv6 ? kIpv6 : kIpv4;
    Bytes frame = build_packet(client_packet(family, test_case.protocol));
    test_case.mutate(frame);

    DropCounts before = drops();
    RunResult result = run(frame);
    EXPECT_EQ(result.verdict, XDP_DROP) << verdict_name(result.verdict);
    DropCounts after = drops();
    for (int reason = 0; reason < TG_DROP_REASON_COUNT; ++reason) {
      uint64_t expected = before[reason] + (reason == test_case.reason ? 1 : 0);
      EXPECT_EQ(after[reason], expected) << "counter " << drop_reason_name(static_cast<tg_drop_reason>(reason));
    }
  }
  EXPECT_EQ(flow_count(), 0u) << "a malformed packet created a flow";
}

TEST_F(XdpTest, KernelRefusesFramesShorterThanEthernet) {
  // Nothing shorter than an Ethernet header reaches an XDP program: the
  // kernel refuses it before the program runs (here and on receive), so
  // TG_DROP_ETH_TRUNCATED is reached through a truncated VLAN tag above.
  Bytes runt(13, 0xff);
  xdp_md context{};
  context.data_end = static_cast<uint32_t>(runt.size());
  context.ingress_ifindex = static_cast<uint32_t>(network_.client_ifindex);
  LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = runt.data(), .data_size_in = 13, .ctx_in = &context,
              .ctx_size_in = sizeof(context), .repeat = 1);
  EXPECT_NE(bpf_prog_test_run_opts(datapath_->xdp_program_fd(), &options), 0);
  EXPECT_EQ(errno, EINVAL);
}

uint32_t filter_bit(const std::string& address) {
  uint32_t words[4] = {};
  IpAddress::parse(address)->to_words(words);
  return tg_vip_filter_bit(words);
}

// An address of the lab's ranges, not the family's service address, whose
// tg_vip_filter bit is the service address's: the filter lets its packets
// through to the exact look-up.
std::string same_filter_bit(const Addresses& family) {
  const uint32_t bit = filter_bit(family.service);
  uint32_t words[4] = {};
  IpAddress::parse(family.ipv6 ? "2001:db8:200::" : "198.18.0.0")->to_words(words);
  const Family kind = family.ipv6 ? Family::ipv6 : Family::ipv4;
  const uint32_t base = ntohl(words[family.ipv6 ? 3 : 0]);
  for (uint32_t host = 1; host < (1u << 20); ++host) {
    words[family.ipv6 ? 3 : 0] = htonl(base + host);
    std::string candidate = IpAddress::from_words(words, kind).to_string();
    if (tg_vip_filter_bit(words) == bit && candidate != family.service) return candidate;
  }
  ADD_FAILURE() << "no address shares the filter bit of " << family.service;
  return family.other_address;
}

// Malformed packets to other addresses pass: those the address filter
// stops, and those it lets through to the exact look-up (their bit is a
// service address's).
TEST_F(XdpTest, MalformedPacketsToOtherAddressesPassUntouched) {
  for (const Addresses* family : {&kIpv4, &kIpv6})
    for (uint8_t protocol : {6, 17}) apply(service_spec(*family, protocol, 3));
  const std::string colliding[2] = {same_filter_bit(kIpv4), same_filter_bit(kIpv6)};

  for (const auto& test_case : malformed_cases()) {
    if (!test_case.destination_readable) continue;
    const Addresses& family = test_case.ipv6 ? kIpv6 : kIpv4;
    for (const std::string& destination : {std::string(family.other_address), colliding[test_case.ipv6]}) {
      SCOPED_TRACE(fmt::format("{} to {}", test_case.name, destination));
      PacketSpec spec = client_packet(family, test_case.protocol);
      spec.dst = destination;
      Bytes frame = build_packet(spec);
      test_case.mutate(frame);
      DropCounts before = drops();
      RunResult result = run(frame);
      EXPECT_EQ(result.verdict, XDP_PASS) << verdict_name(result.verdict);
      EXPECT_EQ(result.data, frame) << hex_diff(frame, result.data);
      EXPECT_EQ(drops(), before);
    }
  }
  EXPECT_EQ(map_entries(datapath_->maps().fragments), 0u) << "another address's fragments were remembered";
}

// The filter has the bit of every service address while some service has
// it; a bit two addresses share stays until both are gone; a restart
// writes it again from the services.
TEST_F(XdpTest, TheAddressFilterHoldsTheBitOfEveryServiceAddress) {
  const int fd = datapath_->maps().vip_filter.fd();
  auto bit_set = [fd](const std::string& address) {
    const uint32_t bit = filter_bit(address);
    const uint32_t word = bit / 32;
    uint32_t bits = 0;
    EXPECT_EQ(bpf_map_lookup_elem(fd, &word, &bits), 0);
    return (bits >> (bit % 32) & 1) != 0;
  };
  const std::string collider = same_filter_bit(kIpv4);
  EXPECT_FALSE(bit_set(kIpv4.service));
  ServiceSpec first = service_spec(kIpv4, 6, 1);
  ServiceSpec second = service_spec(kIpv4, 6, 1);
  second.address.endpoint.address = *IpAddress::parse(collider);
  apply(first);
  EXPECT_TRUE(bit_set(kIpv4.service));
  apply(second);
  ASSERT_TRUE(dataplane_->remove_service(first.address));
  EXPECT_TRUE(bit_set(kIpv4.service)) << "the other address of the bit lost it";
  PacketSpec to_second = client_packet(kIpv4, 6);
  to_second.dst = collider;
  EXPECT_EQ(run(build_packet(to_second)).verdict, XDP_REDIRECT);

  // A restart with the bit cleared in the kernel: adopt() writes it again.
  const uint32_t word = filter_bit(collider) / 32, zero = 0;
  ASSERT_EQ(bpf_map_update_elem(fd, &word, &zero, BPF_ANY), 0);
  Dataplane restarted(datapath_->maps());
  ASSERT_TRUE(restarted.adopt());
  EXPECT_TRUE(bit_set(collider));
  ASSERT_TRUE(restarted.remove_service(second.address));
  EXPECT_FALSE(bit_set(collider));
  EXPECT_EQ(run(build_packet(to_second)).verdict, XDP_PASS);
}

// --- counters ---------------------------------------------------------------

TEST_F(XdpTest, CountersMoveAsTheyShould) {
  auto spec = service_spec(kIpv6, 6, 3);
  apply(spec);
  std::map<int, tg_counters> expected_backend;
  tg_counters expected_service{};
  for (uint16_t port = 46000; port < 46010; ++port) {
    PacketSpec packet = client_packet(kIpv6, 6, port);
    for (int i = 0; i < 3; ++i) {
      packet.tcp_flags = i == 0 ? kTcpSyn : kTcpAck;
      packet.payload.assign(static_cast<size_t>(i * 10), 'x');
      Bytes frame = build_packet(packet);
      RunResult result = run(frame);
      ASSERT_EQ(result.verdict, XDP_REDIRECT);
      int backend = backend_of(kIpv6, result.data);
      auto& counters = expected_backend[backend];
      counters.packets += 1;
      counters.bytes += frame.size();
      counters.new_flows += i == 0;
      expected_service.packets += 1;
      expected_service.bytes += frame.size();
      expected_service.new_flows += i == 0;
    }
  }
  tg_counters service = service_counters(spec.address);
  EXPECT_EQ(service.packets, expected_service.packets);
  EXPECT_EQ(service.bytes, expected_service.bytes);
  EXPECT_EQ(service.new_flows, 10u);
  for (int backend = 0; backend < 3; ++backend) {
    tg_counters counters = backend_counters(spec.address, spec.backends[backend].endpoint);
    EXPECT_EQ(counters.packets, expected_backend[backend].packets) << "backend " << backend;
    EXPECT_EQ(counters.bytes, expected_backend[backend].bytes) << "backend " << backend;
    EXPECT_EQ(counters.new_flows, expected_backend[backend].new_flows) << "backend " << backend;
  }
  EXPECT_EQ(drops(), DropCounts{});
}

// --- the table switch ------------------------------------------------------

TEST_F(XdpTest, TableUpdateWritesOnlyChangedEntries) {
  // 20 backends on the backend side's /24 (no neighbours needed: no
  // packet is sent here).
  ServiceSpec spec{service_address(kIpv4, 6), TG_MAGLEV_DEFAULT_SIZE, {}};
  const std::string backend_side = fmt::format("{}/{}", topology::kGwBackendV4, topology::kLanPrefixV4);
  for (uint32_t host = 100; host < 122; ++host)
    spec.backends.push_back({*Endpoint::parse(fmt::format("{}:8080", ipv4_host(backend_side, host))), 1});
  auto last = spec.backends.back();
  spec.backends.pop_back();
  auto second_last = spec.backends.back();
  spec.backends.pop_back();
  apply(spec);
  // The table, then the list of its 20 backends.
  EXPECT_EQ(dataplane_->last_write().table_entries, static_cast<size_t>(TG_MAGLEV_DEFAULT_SIZE) + 20);
  spec.backends.push_back(second_last);
  apply(spec);
  spec.backends.push_back(last);
  apply(spec);
  // The standby held the table of 20 backends: writing 22 changes about
  // 2/22 of the entries, not the whole table.
  const size_t written = dataplane_->last_write().table_entries;
  EXPECT_GT(written, 0u);
  EXPECT_LT(written, static_cast<size_t>(TG_MAGLEV_DEFAULT_SIZE) / 6) << written << " entries written";
  EXPECT_EQ(dataplane_->last_write().backend_entries, 1u) << "only the added backend's slot";

  // A new weight for one backend of 22 writes that backend's slot only.
  spec.backends[3].weight = 5;
  apply(spec);
  EXPECT_EQ(dataplane_->last_write().backend_entries, 1u);
  tg_backend value{};
  const uint32_t index = *dataplane_->backend_index(spec.address, spec.backends[3].endpoint);
  ASSERT_EQ(bpf_map_lookup_elem(datapath_->maps().backends.fd(), &index, &value), 0);
  EXPECT_EQ(value.weight, 5u);

  // What the kernel holds is what the agent built.
  auto id = dataplane_->service_id(spec.address);
  ASSERT_TRUE(id);
  uint32_t inner_id = 0;
  ASSERT_EQ(bpf_map_lookup_elem(datapath_->maps().maglev.fd(), &*id, &inner_id), 0);
  int inner_fd = bpf_map_get_fd_by_id(inner_id);
  ASSERT_GE(inner_fd, 0);
  const auto* table = dataplane_->active_table(spec.address);
  ASSERT_TRUE(table);
  for (uint32_t slot = 0; slot < table->size(); slot += 97) {
    uint32_t value = 0;
    ASSERT_EQ(bpf_map_lookup_elem(inner_fd, &slot, &value), 0);
    ASSERT_EQ(value, (*table)[slot]) << "slot " << slot;
  }
  close(inner_fd);
}

TEST_F(XdpTest, InvalidServiceChangesNothing) {
  auto spec = service_spec(kIpv4, 6, 2);
  apply(spec);
  const std::vector<uint32_t> table_before = *dataplane_->active_table(spec.address);
  auto bad = spec;
  bad.backends.push_back(bad.backends[0]);
  auto status = dataplane_->apply_service(bad);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("listed twice"), std::string::npos) << status.error().message;
  bad = spec;
  bad.maglev_size = 65536;
  EXPECT_FALSE(dataplane_->apply_service(bad));
  bad = spec;
  bad.backends[1].weight = 0;
  EXPECT_FALSE(dataplane_->apply_service(bad));
  bad = spec;
  bad.backends.push_back({backend_endpoint(kIpv6, 0), 1});
  EXPECT_FALSE(dataplane_->apply_service(bad));

  EXPECT_EQ(dataplane_->last_write().table_entries, static_cast<size_t>(TG_MAGLEV_DEFAULT_SIZE) + 2);
  EXPECT_EQ(*dataplane_->active_table(spec.address), table_before);
  EXPECT_EQ(dataplane_->service_spec(spec.address)->backends.size(), 2u);
  RunResult result = run(build_packet(client_packet(kIpv4, 6)));
  EXPECT_EQ(result.verdict, XDP_REDIRECT);
  int backend = backend_of(kIpv4, result.data);
  EXPECT_TRUE(backend == 0 || backend == 1);
}

// Two gateways given the same backends by changes in different orders (one
// of them also took a backend and gave it up, so their slots differ) hold
// the same table, slot for slot by endpoint, and show the same digest.
TEST_F(XdpTest, TwoGatewaysGivenTheSameChangesInAnyOrderHoldTheSameTable) {
  auto other_datapath = DataPath::load(load_options());
  ASSERT_TRUE(other_datapath) << other_datapath.error().message;
  Dataplane other(other_datapath.value()->maps());
  const ServiceSpec full = [this] {
    auto spec = service_spec(kIpv4, 6, 5);
    for (size_t i = 0; i < spec.backends.size(); ++i) spec.backends[i].weight = static_cast<uint32_t>(i + 1);
    spec.backends[3].state = BackendState::draining;
    return spec;
  }();
  ServiceSpec step = full;
  step.backends.clear();
  for (const auto& backend : full.backends) {  // one backend at a time, drained last
    step.backends.push_back(backend);
    step.backends.back().state = BackendState::up;
    ASSERT_TRUE(dataplane_->apply_service(step));
  }
  ASSERT_TRUE(dataplane_->apply_service(full));
  step.backends.assign(full.backends.rbegin(), full.backends.rend());  // all at once, reversed
  step.backends.push_back({backend_endpoint(kIpv4, 0), 9});
  step.backends.back().endpoint.port += 1;
  ASSERT_TRUE(other.apply_service(step));
  step.backends.pop_back();
  ASSERT_TRUE(other.apply_service(step));

  auto endpoints = [](const Dataplane& plane, const ServiceAddress& address) {
    std::map<uint32_t, Endpoint> by_index;
    const auto slots = plane.slots(address);
    for (const auto& [endpoint, index] : slots->backends) by_index[index] = endpoint;
    std::vector<std::string> named;
    for (uint32_t index : *plane.active_table(address))
      named.push_back(index == TG_BACKEND_NONE ? "-" : by_index.at(index).to_string());
    return named;
  };
  EXPECT_NE(dataplane_->slots(full.address)->backends, other.slots(full.address)->backends)
      << "the two gateways' slots should differ for this test to mean something";
  EXPECT_TRUE(endpoints(*dataplane_, full.address) == endpoints(other, full.address));
  const uint64_t digest = dataplane_->slots(full.address)->table_digest;
  EXPECT_NE(digest, 0u);
  EXPECT_EQ(other.slots(full.address)->table_digest, digest);
  auto changed = full;
  changed.backends[0].weight = 7;
  ASSERT_TRUE(other.apply_service(changed));
  EXPECT_NE(other.slots(full.address)->table_digest, digest);
}

// Commands that change the backend side of the test network.
std::string set_mtu(int mtu) { return fmt::format("ip link set {} mtu {}", topology::kGwBackendLink, mtu); }
std::string set_first_backend_mac(const char* mac) {
  return fmt::format("ip neigh replace {} lladdr {} nud permanent dev {}", kIpv4.backends[0], mac,
                     topology::kGwBackendLink);
}

// The FIB's answer for a backend is reused per CPU: a neighbour or MTU
// change reaches the data path when the entry expires (TG_FIB_CACHE_NS),
// and at once for a backend slot used anew.
TEST_F(XdpTest, FibAnswerIsCachedPerBackendUntilItExpires) {
  auto restore = on_first_cpu([] {  // the cache is per CPU
    std::system(set_mtu(1500).c_str());
    std::system(set_first_backend_mac(topology::kBpfBackendMacs[0]).c_str());
  });
  apply(service_spec(kIpv4, 6, 1));
  PacketSpec packet = client_packet(kIpv4, 6);
  auto destination_mac = [](const Bytes& frame) {
    return Mac{frame[0], frame[1], frame[2], frame[3], frame[4], frame[5]};
  };
  RunResult first = run(build_packet(packet));
  ASSERT_EQ(first.verdict, XDP_REDIRECT);
  EXPECT_EQ(destination_mac(first.data), TestNetwork::backend_mac(0));

  constexpr const char* kMovedMac = "02:00:00:00:01:99";
  ASSERT_EQ(std::system(set_first_backend_mac(kMovedMac).c_str()), 0);
  packet.tcp_flags = kTcpAck;
  EXPECT_EQ(destination_mac(run(build_packet(packet)).data), TestNetwork::backend_mac(0))
      << "within its lifetime the cached answer is used";

  // Expire every CPU's entry: the next packet looks the FIB up again.
  const int fd = datapath_->maps().fib_cache.fd();
  const uint32_t index = *dataplane_->backend_index(service_address(kIpv4, 6), backend_endpoint(kIpv4, 0));
  std::vector<tg_fib_entry> entries(static_cast<size_t>(libbpf_num_possible_cpus()));
  ASSERT_EQ(bpf_map_lookup_elem(fd, &index, entries.data()), 0);
  EXPECT_GT(entries[0].expires_ns, 0u) << "CPU 0 cached the answer";
  for (auto& entry : entries) entry.expires_ns = 0;
  ASSERT_EQ(bpf_map_update_elem(fd, &index, entries.data(), BPF_EXIST), 0);
  EXPECT_EQ(destination_mac(run(build_packet(packet)).data), parse_mac(kMovedMac));

  // An MTU change: the same.
  ASSERT_EQ(std::system(set_mtu(1000).c_str()), 0);
  packet.payload.assign(1200, 'x');
  const uint64_t too_big = drops()[TG_DROP_FRAME_TOO_BIG_ANSWERED];
  ASSERT_EQ(bpf_map_lookup_elem(fd, &index, entries.data()), 0);
  EXPECT_EQ(entries[0].mtu, 1500) << "the MTU the FIB reported is kept";
  EXPECT_EQ(run(build_packet(packet)).verdict, XDP_REDIRECT) << "within the entry's lifetime, its MTU holds";
  for (auto& entry : entries) entry.expires_ns = 0;
  ASSERT_EQ(bpf_map_update_elem(fd, &index, entries.data(), BPF_EXIST), 0);
  EXPECT_EQ(run(build_packet(packet)).verdict, XDP_TX) << "then the new MTU: the client is told it";
  EXPECT_EQ(drops()[TG_DROP_FRAME_TOO_BIG_ANSWERED], too_big + 1);
  packet.payload.clear();

  // The slot used anew (the backend removed, then added): a fresh lookup.
  ASSERT_EQ(std::system(set_first_backend_mac(topology::kBpfBackendMacs[0]).c_str()), 0);
  apply(service_spec(kIpv4, 6, 2));
  ServiceSpec without = service_spec(kIpv4, 6, 2);
  without.backends.erase(without.backends.begin());
  apply(without);
  apply(service_spec(kIpv4, 6, 1));
  packet.tcp_flags = kTcpSyn;
  RunResult again = run(build_packet(packet));
  ASSERT_EQ(backend_of(kIpv4, again.data), 0);
  EXPECT_EQ(destination_mac(again.data), TestNetwork::backend_mac(0));
}

}  // namespace
