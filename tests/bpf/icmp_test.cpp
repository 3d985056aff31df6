// ICMP and path MTU at the edges (bpf/lib/icmp.h and the TC program): a
// packet too big for the backend side is answered as a router would; ICMP
// errors about a flow follow it, translated, in both directions; a reply
// that cannot reach its client is dropped and counted, never sent as is.
// Every expected frame is built from scratch (packet.h).
#include <bpf/libbpf.h>
#include <time.h>

#include <memory>

#include "datapath_fixture.h"

using namespace tollgate;
using namespace tollgate::test;

namespace {

constexpr uint16_t kSmallMtu = 1400;
constexpr size_t kIpv4Header = 20;
constexpr size_t kIpv6Header = 40;

std::string set_mtu(const char* link, int mtu) { return fmt::format("ip link set {} mtu {}", link, mtu); }

// The MTU of `link` lowered for one test, put back when it ends.
std::shared_ptr<void> lower_mtu(const char* link) {
  EXPECT_EQ(std::system(set_mtu(link, kSmallMtu).c_str()), 0);
  return std::shared_ptr<void>(nullptr, [link](void*) { std::system(set_mtu(link, 1500).c_str()); });
}

uint64_t coarse_now_ns() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(now.tv_nsec);
}

struct IcmpCase {
  const char* name;
  const Addresses* family;
  uint8_t protocol;
};
void PrintTo(const IcmpCase& test_case, std::ostream* out) { *out << test_case.name; }

class IcmpTest : public DataPathTest, public ::testing::WithParamInterface<IcmpCase> {
 protected:
  const Addresses& family() { return *GetParam().family; }
  uint8_t protocol() { return GetParam().protocol; }
  size_t ip_header() { return family().ipv6 ? kIpv6Header : kIpv4Header; }
  uint8_t too_big_type() { return family().ipv6 ? 2 : 3; }
  uint8_t too_big_code() { return family().ipv6 ? 0 : 4; }
  uint8_t unreachable_type() { return family().ipv6 ? 1 : 3; }
  uint8_t port_unreachable_code() { return family().ipv6 ? 4 : 3; }
  uint8_t time_exceeded_type() { return family().ipv6 ? 3 : 11; }

  // The client's first packet; returns the backend it went to.
  int open_flow(const PacketSpec& request) {
    RunResult forwarded = run(build_packet(request));
    EXPECT_EQ(forwarded.verdict, XDP_REDIRECT) << verdict_name(forwarded.verdict);
    return backend_of(family(), forwarded.data);
  }

  // The client's packet as its backend received it.
  PacketSpec as_forwarded(PacketSpec request, int backend) {
    request.dst = family().backends[backend];
    request.dst_port = 8080;
    request.ttl -= 1;
    return request;
  }

  // The backend's reply to `request` as the backend sends it.
  PacketSpec backend_reply(const PacketSpec& request, int backend) {
    return DataPathTest::backend_reply(family(), request, backend, request.protocol == 17 ? Bytes(200, 'r') : Bytes{});
  }

  // A packet of `size` bytes of IP (header included) on the client's flow.
  PacketSpec sized(PacketSpec packet, size_t size) {
    packet.tcp_flags = kTcpAck;
    packet.payload.assign(size - ip_header() - (packet.protocol == 6 ? 20 : 8), 'x');
    return packet;
  }
};

// A DF packet (every IPv6 packet) too big for the backend side: the client
// hears ICMP fragmentation needed / packet too big with that MTU, from the
// service address, quoting its packet; nothing is forwarded or counted as
// sent. Without DF, the translated packet goes to the kernel to fragment.
TEST_P(IcmpTest, TooBigPacketIsAnsweredWithTheBackendSideMtu) {
  auto restore = lower_mtu(topology::kGwBackendLink);
  apply(service_spec(family(), protocol(), 3));
  const ServiceAddress service = service_address(family(), protocol());
  PacketSpec request = client_packet(family(), protocol());
  const int backend = open_flow(request);
  ASSERT_GE(backend, 0);
  EXPECT_EQ(run(build_packet(sized(request, kSmallMtu))).verdict, XDP_REDIRECT) << "a packet that fits goes on";

  const PacketSpec big = sized(request, 1500);
  const tg_counters sent_before = service_counters(service);
  const uint64_t answered = drops()[TG_DROP_FRAME_TOO_BIG_ANSWERED];
  RunResult result = run(build_packet(big));
  ASSERT_EQ(result.verdict, XDP_TX) << verdict_name(result.verdict);

  PacketSpec answer;
  answer.ipv6 = family().ipv6;
  answer.src = family().service;
  answer.dst = family().client;
  answer.src_mac = TestNetwork::kClientSideMac;
  answer.dst_mac = TestNetwork::kClientMac;
  answer.ttl = 64;
  answer.ipv4_id = 0;
  answer.ipv4_tos = 0xc0;
  answer.dont_fragment = false;
  Bytes expected = build_icmp_error(answer, too_big_type(), too_big_code(), kSmallMtu, ip_quote(big, ip_header() + 8));
  EXPECT_EQ(result.data, expected) << hex_diff(expected, result.data);
  std::string why;
  EXPECT_TRUE(checksums_valid(result.data, &why)) << why;
  EXPECT_EQ(drops()[TG_DROP_FRAME_TOO_BIG_ANSWERED], answered + 1);
  EXPECT_EQ(service_counters(service).packets, sent_before.packets) << "answered, not sent";

  if (!family().ipv6) {
    PacketSpec fragmentable = big;
    fragmentable.dont_fragment = false;
    result = run(build_packet(fragmentable));
    EXPECT_EQ(result.verdict, XDP_PASS) << "the kernel fragments it";
    EXPECT_EQ(backend_of(family(), result.data), backend) << "translated first";
    EXPECT_EQ(service_counters(service).packets, sent_before.packets + 1);
  }
}

// The answers are rate-limited per CPU: past the budget, the packet is
// dropped and counted as not answered.
TEST_P(IcmpTest, TooBigAnswersAreRateLimited) {
  auto restore = lower_mtu(topology::kGwBackendLink);
  apply(service_spec(family(), protocol(), 3));
  PacketSpec request = client_packet(family(), protocol());
  ASSERT_GE(open_flow(request), 0);

  const int fd = datapath_->maps().icmp_budget.fd();
  std::vector<tg_event_budget> spent(static_cast<size_t>(libbpf_num_possible_cpus()));
  const uint64_t window = coarse_now_ns();
  for (auto& budget : spent) budget = {window, TG_ICMP_PER_CPU_SECOND};
  const uint32_t zero = 0;
  ASSERT_EQ(bpf_map_update_elem(fd, &zero, spent.data(), BPF_ANY), 0);
  const uint64_t unanswered = drops()[TG_DROP_FRAME_TOO_BIG];
  RunResult result = run(build_packet(sized(request, 1500)));
  if (coarse_now_ns() - window >= 900'000'000u) GTEST_SKIP() << "the budget's second ended before the packet ran";
  EXPECT_EQ(result.verdict, XDP_DROP) << verdict_name(result.verdict);
  EXPECT_EQ(drops()[TG_DROP_FRAME_TOO_BIG], unanswered + 1);
}

// An ICMP error from the client side about a reply of a tracked flow goes
// to that flow's backend, the quoted reply as the backend sent it: its
// address and port, and the checksums that cover them.
TEST_P(IcmpTest, ErrorAboutAReplyGoesToTheFlowsBackendTranslated) {
  apply(service_spec(family(), protocol(), 3));
  PacketSpec request = client_packet(family(), protocol());
  const int backend = open_flow(request);
  ASSERT_GE(backend, 0);

  PacketSpec sent = backend_reply(request, backend);
  sent.ttl = 63;  // what the client got: one hop spent
  PacketSpec received = sent;
  received.src = family().service;
  received.src_port = 80;

  PacketSpec error;  // from a router on the client side
  error.ipv6 = family().ipv6;
  error.src = family().client_side_host;
  error.dst = family().service;
  error.src_mac = parse_mac(topology::kBpfClientSideHostMac);
  PacketSpec delivered = error;
  delivered.dst = family().backends[backend];
  delivered.ttl -= 1;
  delivered.src_mac = TestNetwork::kBackendSideMac;
  delivered.dst_mac = TestNetwork::backend_mac(backend);

  // What RFC 792 asks (the IP header and 8 bytes), and all of the reply.
  for (size_t quoted : {ip_header() + 8, SIZE_MAX}) {
    SCOPED_TRACE(fmt::format("quoting {} bytes", quoted == SIZE_MAX ? std::string("all") : std::to_string(quoted)));
    Bytes frame = build_icmp_error(error, too_big_type(), too_big_code(), kSmallMtu, ip_quote(received, quoted));
    RunResult result = run(frame);
    ASSERT_EQ(result.verdict, XDP_REDIRECT) << verdict_name(result.verdict);
    Bytes expected = build_icmp_error(delivered, too_big_type(), too_big_code(), kSmallMtu, ip_quote(sent, quoted));
    EXPECT_EQ(result.data, expected) << hex_diff(expected, result.data);
    std::string why;
    EXPECT_TRUE(checksums_valid(result.data, &why)) << why;
  }
  Bytes frame = build_icmp_error(error, unreachable_type(), 1, 0, ip_quote(received));
  RunResult result = run(frame);
  EXPECT_EQ(result.verdict, XDP_REDIRECT) << "destination unreachable follows the flow too";
  EXPECT_EQ(backend_of(family(), result.data), backend);
}

// Errors that name no flow of a backend: dropped and counted when they
// claim a service flow, passed to the gateway's stack when they are not
// about the service at all.
TEST_P(IcmpTest, ErrorsThatNameNoTrackedFlowAreNotForwarded) {
  apply(service_spec(family(), protocol(), 3));
  PacketSpec request = client_packet(family(), protocol());
  const int backend = open_flow(request);
  ASSERT_GE(backend, 0);
  PacketSpec received = backend_reply(request, backend);
  received.src = family().service;
  received.src_port = 80;
  PacketSpec error;
  error.ipv6 = family().ipv6;
  error.src = family().client;
  error.dst = family().service;
  auto send = [&](const Bytes& quote, uint8_t type = 0, uint8_t code = 0) {
    return run(build_icmp_error(error, type ? type : too_big_type(), type ? code : too_big_code(), kSmallMtu, quote));
  };

  PacketSpec unknown = received;
  unknown.dst_port = 40001;  // no such flow
  uint64_t before = drops()[TG_DROP_ICMP_UNKNOWN_FLOW];
  EXPECT_EQ(send(ip_quote(unknown)).verdict, XDP_DROP);
  EXPECT_EQ(drops()[TG_DROP_ICMP_UNKNOWN_FLOW], before + 1);

  before = drops()[TG_DROP_ICMP_TRUNCATED];
  EXPECT_EQ(send(ip_quote(received, ip_header() + 4)).verdict, XDP_DROP) << "half the ports quoted";
  Bytes lying = ip_quote(received);
  if (family().ipv6)
    put16(lying, 4, 4);  // payload length: 4 bytes of L4
  else
    put16(lying, 2, kIpv4Header + 4);  // total length: the same
  EXPECT_EQ(send(lying).verdict, XDP_DROP) << "the quoted length says the ports are not there";
  EXPECT_EQ(drops()[TG_DROP_ICMP_TRUNCATED], before + 2);

  PacketSpec elsewhere = received;
  elsewhere.src = family().other_address;  // not about a packet from the service
  Bytes frame = build_icmp_error(error, too_big_type(), too_big_code(), kSmallMtu, ip_quote(elsewhere));
  RunResult result = run(frame);
  EXPECT_EQ(result.verdict, XDP_PASS);
  EXPECT_EQ(result.data, frame);
  frame = build_icmp_error(error, family().ipv6 ? 128 : 8, 0, 0x10001, Bytes(16, 'e'));  // echo request
  EXPECT_EQ(run(frame).verdict, XDP_PASS) << "not an error: the gateway's stack answers it";
}

// An ICMP error from the backend side about a client's packet reaches the
// client as if about the packet it sent to the service; from the service
// address when the backend sent it. A UDP port unreachable from the
// backend counts against it (passive ejection); one from anyone else
// does not.
TEST_P(IcmpTest, BackendSideErrorReachesTheClientTranslated) {
  apply(service_spec(family(), protocol(), 3));
  const ServiceAddress service = service_address(family(), protocol());
  PacketSpec request = client_packet(family(), protocol());
  request.payload = protocol() == 17 ? Bytes(100, 'q') : Bytes{};
  const int backend = open_flow(request);
  ASSERT_GE(backend, 0);
  const PacketSpec got = as_forwarded(request, backend);
  PacketSpec sent = got;  // as the client sent it, as far as it is quoted
  sent.dst = family().service;
  sent.dst_port = 80;

  const int router = 3;  // a host on the backend side that is not a backend
  for (int sender : {backend, router}) {
    SCOPED_TRACE(sender == backend ? "from the backend" : "from a router on the backend side");
    PacketSpec error;
    error.ipv6 = family().ipv6;
    error.src = family().backends[sender];
    error.dst = family().client;
    error.src_mac = TestNetwork::backend_mac(sender);
    error.dst_mac = TestNetwork::kBackendSideMac;
    const uint8_t type = sender == backend ? unreachable_type() : time_exceeded_type();
    const uint8_t code = sender == backend ? port_unreachable_code() : 0;
    const uint64_t unreachable = backend_health(service, backend_endpoint(family(), backend)).udp_unreachable;

    RunResult result = run_tc(build_icmp_error(error, type, code, 0, ip_quote(got)));
    ASSERT_EQ(result.verdict, TC_ACT_REDIRECT) << "TC verdict " << result.verdict;
    PacketSpec delivered = error;
    if (sender == backend) delivered.src = family().service;
    delivered.ttl -= 1;
    delivered.src_mac = TestNetwork::kClientSideMac;
    delivered.dst_mac = TestNetwork::kClientMac;
    Bytes expected = build_icmp_error(delivered, type, code, 0, ip_quote(sent));
    EXPECT_EQ(result.data, expected) << hex_diff(expected, result.data);
    std::string why;
    EXPECT_TRUE(checksums_valid(result.data, &why)) << why;
    const bool counts = sender == backend && protocol() == 17;
    EXPECT_EQ(backend_health(service, backend_endpoint(family(), backend)).udp_unreachable, unreachable + counts);
  }
}

// A reply whose client has no route from the gateway is dropped and
// counted: never handed to the kernel with the backend's address on it.
// One too big (DF) for the client side is left to the kernel untranslated,
// which answers the backend with ICMP too big; without DF it is translated
// and fragmented.
TEST_P(IcmpTest, ReplyThatCannotGoOnIsCountedAndNeverLeaksTheBackend) {
  apply(service_spec(family(), protocol(), 3));
  PacketSpec stranger = client_packet(family(), protocol());
  stranger.src = family().ipv6 ? "2001:db8:50::100" : "198.18.50.100";  // no route back
  int backend = open_flow(stranger);
  ASSERT_GE(backend, 0);
  uint64_t before = drops()[TG_DROP_REPLY_NO_ROUTE];
  EXPECT_EQ(run_tc(build_packet(backend_reply(stranger, backend))).verdict, TC_ACT_SHOT);
  EXPECT_EQ(drops()[TG_DROP_REPLY_NO_ROUTE], before + 1);

  auto restore = lower_mtu(topology::kGwClientLink);
  PacketSpec request = client_packet(family(), protocol());
  backend = open_flow(request);
  ASSERT_GE(backend, 0);
  PacketSpec reply = sized(backend_reply(request, backend), 1500);
  Bytes frame = build_packet(reply);
  before = drops()[TG_DROP_REPLY_TOO_BIG];
  RunResult result = run_tc(frame);
  EXPECT_EQ(result.verdict, TC_ACT_OK);
  EXPECT_EQ(result.data, frame) << "untranslated, for the kernel to refuse";
  EXPECT_EQ(drops()[TG_DROP_REPLY_TOO_BIG], before + 1);
  if (!family().ipv6) {
    reply.dont_fragment = false;
    result = run_tc(build_packet(reply));
    EXPECT_EQ(result.verdict, TC_ACT_OK);
    PacketSpec translated = reply;
    translated.src = family().service;
    translated.src_port = 80;  // the kernel spends the TTL as it forwards
    Bytes expected = build_packet(translated);
    EXPECT_EQ(result.data, expected) << "translated, for the kernel to fragment\n" << hex_diff(expected, result.data);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, IcmpTest,
                         ::testing::Values(IcmpCase{"Ipv4Tcp", &kIpv4, 6}, IcmpCase{"Ipv4Udp", &kIpv4, 17},
                                           IcmpCase{"Ipv6Tcp", &kIpv6, 6}, IcmpCase{"Ipv6Udp", &kIpv6, 17}),
                         [](const auto& info) { return std::string(info.param.name); });

class Ipv6HeaderTest : public DataPathTest {};

// EtherType IPv6 with another IP version, to a service: dropped, counted
// under its own reason, no flow made.
TEST_F(Ipv6HeaderTest, VersionOtherThanSixIsDropped) {
  apply(service_spec(kIpv6, 6, 3));
  const uint64_t before = drops()[TG_DROP_IPV6_BAD_VERSION];
  const std::vector<uint8_t> versions = {0, 4, 5, 7, 8, 10, 15};
  for (uint8_t version : versions) {
    Bytes frame = build_packet(client_packet(kIpv6, 6));
    frame[14] = static_cast<uint8_t>(version << 4 | (frame[14] & 0x0f));
    EXPECT_EQ(run(frame).verdict, XDP_DROP) << "version " << int{version};
  }
  EXPECT_EQ(drops()[TG_DROP_IPV6_BAD_VERSION], before + versions.size());
  EXPECT_EQ(flow_count(), 0u);
  EXPECT_EQ(run(build_packet(client_packet(kIpv6, 6))).verdict, XDP_REDIRECT) << "version 6 goes on";
}

}  // namespace
