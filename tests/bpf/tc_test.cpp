// The TC reply program: a backend's reply to a NAT'd flow leaves with the
// service address and port as its source, towards the client; what a
// backend port sends outside any flow does not leave.
#include <bpf/libbpf.h>
#include <sched.h>

#include "datapath_fixture.h"

using namespace tollgate;
using namespace tollgate::test;

namespace {

struct ReplyCase {
  const char* name;
  const Addresses* family;
  uint8_t protocol;
};
void PrintTo(const ReplyCase& test_case, std::ostream* out) { *out << test_case.name; }

class TcReplyTest : public DataPathTest, public ::testing::WithParamInterface<ReplyCase> {
 protected:
  PacketSpec reply_to(const PacketSpec& request, int backend) {
    return backend_reply(*GetParam().family, request, backend,
                         request.protocol == 17 ? Bytes{'b', ' ', 'p', 'o', 'n', 'g'} : Bytes{});
  }
};

TEST_P(TcReplyTest, ReplyOfATrackedFlowGetsTheServiceAddressBack) {
  const auto& family = *GetParam().family;
  const uint8_t protocol = GetParam().protocol;
  apply(service_spec(family, protocol, 3));

  PacketSpec request = client_packet(family, protocol);
  RunResult forwarded = run(build_packet(request));
  ASSERT_EQ(forwarded.verdict, XDP_REDIRECT);
  int backend = backend_of(family, forwarded.data);
  ASSERT_GE(backend, 0);

  PacketSpec reply = reply_to(request, backend);
  RunResult result = run_tc(build_packet(reply));
  ASSERT_EQ(result.verdict, TC_ACT_REDIRECT) << "TC verdict " << result.verdict;

  Bytes expected = reply_output(family, reply);
  EXPECT_EQ(result.data, expected) << hex_diff(expected, result.data);
  std::string why;
  EXPECT_TRUE(checksums_valid(result.data, &why)) << why;
  // A UDP datagram back is the backend's sign of life (passive health).
  const auto health = backend_health(service_address(family, protocol), backend_endpoint(family, backend));
  EXPECT_EQ(health.udp_replies, protocol == 17 ? 1u : 0u);
}

TEST_P(TcReplyTest, WhatNoBackendPortSentIsLeftAlone) {
  const auto& family = *GetParam().family;
  const uint8_t protocol = GetParam().protocol;
  apply(service_spec(family, protocol, 3));
  PacketSpec request = client_packet(family, protocol);
  int backend = backend_of(family, run(build_packet(request)).data);
  ASSERT_GE(backend, 0);

  std::vector<PacketSpec> others;
  PacketSpec other = reply_to(request, backend);
  other.src_port = 8081;  // another port of the backend
  others.push_back(other);
  other = reply_to(request, 3);  // a host that is no backend of the service
  others.push_back(other);
  other = reply_to(request, backend);  // to the gateway itself (a health check's answer)
  other.dst = family.ipv6 ? topology::kGwBackendV6 : topology::kGwBackendV4;
  others.push_back(other);
  for (const auto& spec : others) {
    Bytes packet = build_packet(spec);
    RunResult result = run_tc(packet);
    EXPECT_EQ(result.verdict, TC_ACT_OK) << spec.src << ":" << spec.src_port << " -> " << spec.dst;
    EXPECT_EQ(result.data, packet) << hex_diff(packet, result.data);
  }
  EXPECT_EQ(drops()[TG_DROP_REPLY_NO_FLOW], 0u);
}

// A backend's late answer to a flow that L4 retry moved to another backend,
// or that expired, would leave with the backend's own address: dropped and
// counted, for as long as some service has that backend.
TEST_P(TcReplyTest, FromABackendPortWithoutAFlowNothingLeaks) {
  const auto& family = *GetParam().family;
  const uint8_t protocol = GetParam().protocol;
  ServiceSpec first = service_spec(family, protocol, 3);
  ServiceSpec second = service_spec(family, protocol, 1);  // shares backend 0
  second.address.endpoint.port = 81;
  apply(first);
  apply(second);
  PacketSpec request = client_packet(family, protocol);
  int backend = backend_of(family, run(build_packet(request)).data);
  ASSERT_GE(backend, 0);

  PacketSpec unknown = reply_to(request, backend);
  unknown.dst_port = 40001;  // a client port with no flow
  PacketSpec other_backend = reply_to(request, (backend + 1) % 3);
  for (const auto& spec : {unknown, other_backend}) {
    const uint64_t before = drops()[TG_DROP_REPLY_NO_FLOW];
    EXPECT_EQ(run_tc(build_packet(spec)).verdict, TC_ACT_SHOT) << spec.src << " -> " << spec.dst_port;
    EXPECT_EQ(drops()[TG_DROP_REPLY_NO_FLOW], before + 1);
  }

  // Backend 0 stays an endpoint while one service has it; then it is not.
  PacketSpec from_zero = reply_to(request, 0);
  from_zero.dst_port = 40002;
  first.backends.erase(first.backends.begin());
  apply(first);
  EXPECT_EQ(run_tc(build_packet(from_zero)).verdict, TC_ACT_SHOT);
  ASSERT_TRUE(dataplane_->remove_service(second.address));
  EXPECT_EQ(run_tc(build_packet(from_zero)).verdict, TC_ACT_OK);
  EXPECT_EQ(map_entries(datapath_->maps().backend_endpoints), 2u);  // backends 1 and 2 of the first
}

// A flow is written once, for both directions: the reply path finds it
// from the backend that answers (the services it serves) and the flow's
// own entry. No reverse entry is made.
TEST_P(TcReplyTest, AFlowIsWrittenOnceForBothDirections) {
  const auto& family = *GetParam().family;
  const uint8_t protocol = GetParam().protocol;
  apply(service_spec(family, protocol, 3));
  PacketSpec request = client_packet(family, protocol);
  int backend = backend_of(family, run(build_packet(request)).data);
  ASSERT_GE(backend, 0);
  EXPECT_EQ(flow_count(), 1u);
  EXPECT_EQ(map_entries(datapath_->maps().reverse_flows), 0u);
  EXPECT_EQ(run_tc(build_packet(reply_to(request, backend))).verdict, TC_ACT_REDIRECT);
}

// One backend endpoint behind two services: a client's flows to each get
// their replies from the service they went to, also with the same client
// port (the backend's own 4-tuples differ only once the first is gone).
TEST_P(TcReplyTest, ABackendOfTwoServicesAnswersEachFromItsOwn) {
  const auto& family = *GetParam().family;
  const uint8_t protocol = GetParam().protocol;
  ServiceSpec first = service_spec(family, protocol, 1);
  ServiceSpec second = service_spec(family, protocol, 1);  // the same backend 0
  second.address.endpoint.port = 81;
  apply(first);
  apply(second);
  PacketSpec to_first = client_packet(family, protocol);
  to_first.src_port = 40000;
  PacketSpec to_second = to_first;
  to_second.dst_port = 81;
  to_second.src_port = 40001;
  for (const PacketSpec& request : {to_first, to_second}) {
    ASSERT_EQ(backend_of(family, run(build_packet(request)).data), 0);
    PacketSpec reply = reply_to(request, 0);
    RunResult result = run_tc(build_packet(reply));
    ASSERT_EQ(result.verdict, TC_ACT_REDIRECT) << "to port " << request.dst_port;
    Bytes expected = reply_output(family, reply, request.dst_port);
    EXPECT_EQ(result.data, expected) << hex_diff(expected, result.data);
  }
  // Once the first service is gone, its flow's replies leak nowhere; the
  // second's still go.
  ASSERT_TRUE(dataplane_->remove_service(first.address));
  EXPECT_EQ(run_tc(build_packet(reply_to(to_first, 0))).verdict, TC_ACT_SHOT);
  EXPECT_EQ(run_tc(build_packet(reply_to(to_second, 0))).verdict, TC_ACT_REDIRECT);
}

// More services on one backend endpoint than its value lists: the first
// TG_ENDPOINT_SERVICES are found through the list, the flows of the others
// keep reverse entries. Replies of every one reach their clients, also
// after a restart adopts the maps (the list keeps its order: the listed
// services' flows have no reverse entries) and after a listed service goes
// (the next one moves up).
TEST_P(TcReplyTest, MoreServicesThanAnEndpointListsAnswerEachFromItsOwn) {
  const auto& family = *GetParam().family;
  const uint8_t protocol = GetParam().protocol;
  constexpr uint16_t kServices = TG_ENDPOINT_SERVICES + 4;
  std::vector<ServiceSpec> specs;
  std::vector<PacketSpec> requests;
  // Highest port first: a restart that rebuilt the list in address order
  // would leave out the services listed now.
  for (uint16_t i = 0; i < kServices; ++i) {
    ServiceSpec spec = service_spec(family, protocol, 1);  // backend 0 each time
    spec.address.endpoint.port = static_cast<uint16_t>(80 + kServices - 1 - i);
    apply(spec);
    specs.push_back(spec);
    PacketSpec request = client_packet(family, protocol, static_cast<uint16_t>(40000 + i));
    request.dst_port = spec.address.endpoint.port;
    ASSERT_EQ(backend_of(family, run(build_packet(request)).data), 0);
    requests.push_back(request);
  }
  auto reverse_entries = [&](const ServiceSpec& spec) {
    tg_service value{};
    EXPECT_TRUE(*datapath_->maps().services.lookup(spec.address.to_key(), value));
    return (value.flags & TG_SERVICE_REVERSE_ENTRIES) != 0;
  };
  for (uint16_t i = 0; i < kServices; ++i)
    EXPECT_EQ(reverse_entries(specs[i]), i >= TG_ENDPOINT_SERVICES) << "port " << specs[i].address.endpoint.port;
  auto replies_reach_clients = [&](const char* when) {
    for (const PacketSpec& request : requests) {
      PacketSpec reply = reply_to(request, 0);
      RunResult result = run_tc(build_packet(reply));
      ASSERT_EQ(result.verdict, TC_ACT_REDIRECT) << when << ": to port " << request.dst_port;
      Bytes expected = reply_output(family, reply, request.dst_port);
      EXPECT_EQ(result.data, expected) << when << ": " << hex_diff(expected, result.data);
    }
  };
  replies_reach_clients("applied");

  Dataplane restarted(datapath_->maps());
  ASSERT_TRUE(restarted.adopt());
  for (const auto& spec : specs) ASSERT_TRUE(restarted.apply_service(spec));
  replies_reach_clients("adopted");

  // The first service goes: the first one left out moves into the list;
  // its flow (a reverse entry) and a new one (none) both answer.
  ASSERT_TRUE(restarted.remove_service(specs.front().address));
  requests.erase(requests.begin());
  PacketSpec moved_up = client_packet(family, protocol, 41000);
  moved_up.dst_port = specs[TG_ENDPOINT_SERVICES].address.endpoint.port;
  ASSERT_EQ(backend_of(family, run(build_packet(moved_up)).data), 0);
  requests.push_back(moved_up);
  replies_reach_clients("after a listed service went");
}

// A service of every port: the backend's port does not tell which one the
// client used, so its flows keep a reverse entry that restores it.
TEST_P(TcReplyTest, AServiceOfEveryPortAnswersFromThePortTheClientUsed) {
  const auto& family = *GetParam().family;
  const uint8_t protocol = GetParam().protocol;
  ServiceSpec every_port = service_spec(family, protocol, 2);
  every_port.address.endpoint.port = 0;
  apply(every_port);
  for (uint16_t port : {uint16_t{443}, uint16_t{5353}}) {
    PacketSpec request = client_packet(family, protocol);
    request.dst_port = port;
    request.src_port = static_cast<uint16_t>(40000 + port);
    int backend = backend_of(family, run(build_packet(request)).data);
    ASSERT_GE(backend, 0);
    PacketSpec reply = reply_to(request, backend);
    RunResult result = run_tc(build_packet(reply));
    ASSERT_EQ(result.verdict, TC_ACT_REDIRECT) << "to port " << port;
    Bytes expected = reply_output(family, reply, port);
    EXPECT_EQ(result.data, expected) << hex_diff(expected, result.data);
  }
  EXPECT_EQ(map_entries(datapath_->maps().reverse_flows), 2u);
}

INSTANTIATE_TEST_SUITE_P(Families, TcReplyTest,
                         ::testing::Values(ReplyCase{"Ipv4Tcp", &kIpv4, 6}, ReplyCase{"Ipv4Udp", &kIpv4, 17},
                                           ReplyCase{"Ipv6Tcp", &kIpv6, 6}, ReplyCase{"Ipv6Udp", &kIpv6, 17}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace

namespace {

// Commands that change the client side of the test network.
std::string set_client_link_mtu(int mtu) { return fmt::format("ip link set {} mtu {}", topology::kGwClientLink, mtu); }
std::string set_client_mac(const char* mac) {
  return fmt::format("ip neigh replace {} lladdr {} nud permanent dev {}", kIpv4.client, mac, topology::kGwClientLink);
}

Mac destination_mac(const Bytes& frame) { return Mac{frame[0], frame[1], frame[2], frame[3], frame[4], frame[5]}; }

class ReplyHopTest : public DataPathTest {};

}  // namespace

// The FIB's answer for a reply is reused per CPU and client: a neighbour or
// MTU change on the client side reaches replies when the entry expires
// (TG_FIB_CACHE_NS); a GSO packet, and a client on a slot another holds,
// are looked up.
TEST_F(ReplyHopTest, TheAnswerForAClientIsCachedUntilItExpires) {
  auto restore = on_first_cpu([] {  // the cache is per CPU
    std::system(set_client_link_mtu(1500).c_str());
    std::system(set_client_mac(topology::kBpfClientMac).c_str());
  });
  apply(service_spec(kIpv4, 6, 1));
  PacketSpec request = client_packet(kIpv4, 6);
  ASSERT_EQ(backend_of(kIpv4, run(build_packet(request)).data), 0);
  const Bytes reply = build_packet(backend_reply(kIpv4, request, 0, {}, kTcpAck));
  RunResult first = run_tc(reply);
  ASSERT_EQ(first.verdict, TC_ACT_REDIRECT);
  EXPECT_EQ(destination_mac(first.data), TestNetwork::kClientMac);

  constexpr const char* kMovedMac = "02:00:00:00:02:99";
  ASSERT_EQ(std::system(set_client_mac(kMovedMac).c_str()), 0);
  EXPECT_EQ(destination_mac(run_tc(reply).data), TestNetwork::kClientMac)
      << "within its lifetime the cached answer is used";
  EXPECT_EQ(destination_mac(run_tc(reply, 1400).data), parse_mac(kMovedMac)) << "a GSO packet is looked up";

  const int fd = datapath_->maps().reply_hops.fd();
  uint32_t client[4] = {};
  IpAddress::parse(kIpv4.client)->to_words(client);
  const uint32_t slot = tg_reply_hop_slot(client);
  std::vector<tg_reply_hop> hops(static_cast<size_t>(libbpf_num_possible_cpus()));
  ASSERT_EQ(bpf_map_lookup_elem(fd, &slot, hops.data()), 0);
  ASSERT_GT(hops[0].expires_ns, 0u) << "CPU 0 cached the answer";
  EXPECT_EQ(hops[0].mtu, 1500) << "the MTU the FIB reported is kept";

  // Another client on the slot: not its answer.
  std::vector<tg_reply_hop> other = hops;
  for (auto& hop : other) hop.addr[0] ^= 1;
  ASSERT_EQ(bpf_map_update_elem(fd, &slot, other.data(), BPF_EXIST), 0);
  EXPECT_EQ(destination_mac(run_tc(reply).data), parse_mac(kMovedMac)) << "another client's answer was used";

  // Expired: looked up again. An MTU change the same: within the entry's
  // lifetime its MTU holds, then a reply too big with DF stays with the
  // kernel (which answers the backend).
  ASSERT_EQ(std::system(set_client_mac(topology::kBpfClientMac).c_str()), 0);
  for (auto& hop : hops) hop.expires_ns = 0;
  ASSERT_EQ(bpf_map_update_elem(fd, &slot, hops.data(), BPF_EXIST), 0);
  EXPECT_EQ(destination_mac(run_tc(reply).data), TestNetwork::kClientMac);
  ASSERT_EQ(std::system(set_client_link_mtu(1000).c_str()), 0);
  const Bytes big = build_packet(backend_reply(kIpv4, request, 0, Bytes(1200, 'x'), kTcpAck));
  EXPECT_EQ(run_tc(big).verdict, TC_ACT_REDIRECT) << "within the entry's lifetime, its MTU holds";
  const uint64_t too_big = drops()[TG_DROP_REPLY_TOO_BIG];
  ASSERT_EQ(bpf_map_lookup_elem(fd, &slot, hops.data()), 0);
  for (auto& hop : hops) hop.expires_ns = 0;
  ASSERT_EQ(bpf_map_update_elem(fd, &slot, hops.data(), BPF_EXIST), 0);
  EXPECT_EQ(run_tc(big).verdict, TC_ACT_OK) << "then the new MTU";
  EXPECT_EQ(drops()[TG_DROP_REPLY_TOO_BIG], too_big + 1);
  // A packet above the cached MTU is looked up, not sent on the entry.
  EXPECT_EQ(destination_mac(run_tc(reply).data), TestNetwork::kClientMac);
  ASSERT_EQ(bpf_map_lookup_elem(fd, &slot, hops.data()), 0);
  EXPECT_EQ(hops[0].mtu, 1000);
  ASSERT_EQ(std::system(set_client_link_mtu(1500).c_str()), 0);
  ASSERT_EQ(std::system(set_client_mac(kMovedMac).c_str()), 0);
  EXPECT_EQ(destination_mac(run_tc(reply).data), TestNetwork::kClientMac);
  RunResult above = run_tc(big);
  EXPECT_EQ(above.verdict, TC_ACT_REDIRECT);
  EXPECT_EQ(destination_mac(above.data), parse_mac(kMovedMac));
}
