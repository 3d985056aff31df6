// Fragments of a service's datagrams: the first fragment picks the backend
// as any packet does, the later ones follow it; a backend's fragmented
// reply leaves with the service address on every fragment.
#include <bpf/bpf.h>
#include <linux/pkt_cls.h>

#include <chrono>

#include "datapath_fixture.h"

using namespace tollgate;
using namespace tollgate::test;

namespace {

struct FragmentCase {
  const char* name;
  const Addresses* family;
  uint8_t protocol;
};
void PrintTo(const FragmentCase& test_case, std::ostream* out) { *out << test_case.name; }

constexpr size_t kPiece = 600;  // bytes of the datagram per fragment

class FragmentTest : public DataPathTest, public ::testing::WithParamInterface<FragmentCase> {
 protected:
  const Addresses& family() const { return *GetParam().family; }
  uint8_t protocol() const { return GetParam().protocol; }

  // A datagram of 1,600 bytes of payload from the client: three fragments.
  PacketSpec big_request(uint16_t src_port = 40000) {
    PacketSpec spec = client_packet(family(), protocol(), src_port);
    spec.dont_fragment = false;
    spec.payload = Bytes(1600, 0);
    for (size_t i = 0; i < spec.payload.size(); ++i) spec.payload[i] = static_cast<uint8_t>(i * 7);
    return spec;
  }

  uint64_t fragment_drops() { return drops()[family().ipv6 ? TG_DROP_IPV6_FRAGMENT : TG_DROP_IPV4_FRAGMENT]; }

  // Every fragment's output, each checked to be redirected to `backend`
  // (-1: whichever the first went to, returned).
  int expect_forwarded(const std::vector<Bytes>& fragments, const PacketSpec& input, int backend = -1,
                       const std::vector<size_t>& order = {}, uint32_t ipv6_id = 0x4242) {
    std::vector<Bytes> expected;
    std::vector<Bytes> outputs(fragments.size());
    for (size_t n = 0; n < fragments.size(); ++n) {
      const size_t i = order.empty() ? n : order[n];
      RunResult result = run(fragments[i]);
      EXPECT_EQ(result.verdict, XDP_REDIRECT) << "fragment " << i << ": " << verdict_name(result.verdict);
      if (backend < 0) backend = backend_of(family(), result.data);
      EXPECT_EQ(backend_of(family(), result.data), backend) << "fragment " << i << " went elsewhere";
      outputs[i] = result.data;
    }
    if (backend < 0) return backend;
    // What a sender's own fragments of the translated datagram would be.
    expected = fragment_frame(expected_output(family(), input, backend), kPiece, ipv6_id);
    EXPECT_EQ(outputs.size(), expected.size());
    for (size_t i = 0; i < std::min(outputs.size(), expected.size()); ++i)
      EXPECT_EQ(outputs[i], expected[i]) << "fragment " << i << "\n" << hex_diff(expected[i], outputs[i]);
    std::string why;
    EXPECT_TRUE(checksums_valid(reassemble(outputs), &why)) << "the backend reassembles: " << why;
    return backend;
  }
};

TEST_P(FragmentTest, LaterFragmentsFollowTheFirstToItsBackend) {
  const auto spec = service_spec(family(), protocol(), 3);
  apply(spec);
  const PacketSpec input = big_request();
  const std::vector<Bytes> fragments = fragment_frame(build_packet(input), kPiece);
  ASSERT_EQ(fragments.size(), 3u);

  const int backend = expect_forwarded(fragments, input);
  ASSERT_GE(backend, 0);
  auto flow = flow_of(family(), input);
  ASSERT_TRUE(flow) << "the first fragment opens the flow";
  EXPECT_EQ(flow->backend_index, dataplane_->backend_index(spec.address, spec.backends[backend].endpoint));
  const tg_counters counters = backend_counters(spec.address, spec.backends[backend].endpoint);
  EXPECT_EQ(counters.packets, 3u);
  EXPECT_EQ(counters.new_flows, 1u);

  // The next datagram of the flow (another identification) goes there too.
  PacketSpec next = input;
  next.ipv4_id = 0x2345;
  next.tcp_flags = kTcpAck;
  std::vector<Bytes> next_fragments = fragment_frame(build_packet(next), kPiece, 0x4343);
  expect_forwarded(next_fragments, next, backend, {}, 0x4343);
}

TEST_P(FragmentTest, AFragmentWhoseFirstWasNotSeenIsDroppedAndCounted) {
  const auto spec = service_spec(family(), protocol(), 3);
  apply(spec);
  const PacketSpec input = big_request();
  const std::vector<Bytes> fragments = fragment_frame(build_packet(input), kPiece);

  // Out of order: the last before the first cannot be placed.
  uint64_t before = fragment_drops();
  EXPECT_EQ(run(fragments[2]).verdict, XDP_DROP);
  EXPECT_EQ(fragment_drops(), before + 1);
  EXPECT_EQ(flow_count(), 0u);
  // Once the first came, the rest follow in any order.
  const int backend = expect_forwarded(fragments, input, -1, {0, 2, 1});
  ASSERT_GE(backend, 0);

  // Another datagram's later fragment (an identification never seen).
  PacketSpec other = input;
  other.ipv4_id = 0x7777;
  before = fragment_drops();
  EXPECT_EQ(run(fragment_frame(build_packet(other), kPiece, 0x7777)[1]).verdict, XDP_DROP);
  EXPECT_EQ(fragment_drops(), before + 1);

  // A first fragment from long ago (past the reassembly time) places nothing.
  const int fd = datapath_->maps().fragments.fd();
  tg_fragment_key key{};
  ASSERT_EQ(bpf_map_get_next_key(fd, nullptr, &key), 0);
  ASSERT_NE(bpf_map_get_next_key(fd, &key, &key), 0) << "one datagram, one entry";
  tg_fragment entry{};
  ASSERT_EQ(bpf_map_lookup_elem(fd, &key, &entry), 0);
  entry.first_seen_ns -= TG_FRAGMENT_TIMEOUT_NS + 1'000'000'000ull;
  ASSERT_EQ(bpf_map_update_elem(fd, &key, &entry, BPF_EXIST), 0);
  before = fragment_drops();
  EXPECT_EQ(run(fragments[1]).verdict, XDP_DROP);
  EXPECT_EQ(fragment_drops(), before + 1);
}

TEST_P(FragmentTest, LaterFragmentsOfARemovedBackendAreDropped) {
  auto spec = service_spec(family(), protocol(), 2);
  apply(spec);
  const PacketSpec input = big_request();
  const std::vector<Bytes> fragments = fragment_frame(build_packet(input), kPiece);
  RunResult first = run(fragments[0]);
  ASSERT_EQ(first.verdict, XDP_REDIRECT);
  const int backend = backend_of(family(), first.data);
  ASSERT_GE(backend, 0);
  spec.backends.erase(spec.backends.begin() + backend);
  apply(spec);

  const uint64_t before = drops()[TG_DROP_NO_BACKEND];
  EXPECT_EQ(run(fragments[1]).verdict, XDP_DROP) << "never to the slot's next tenant";
  EXPECT_EQ(drops()[TG_DROP_NO_BACKEND], before + 1);
}

TEST_P(FragmentTest, FragmentsOfADatagramToNoServicePass) {
  apply(service_spec(family(), protocol(), 3));
  PacketSpec input = big_request();
  input.dst_port = 81;  // the service address, a port no service has
  const DropCounts before = drops();
  for (const Bytes& fragment : fragment_frame(build_packet(input), kPiece)) {
    RunResult result = run(fragment);
    EXPECT_EQ(result.verdict, XDP_PASS) << verdict_name(result.verdict);
    EXPECT_EQ(result.data, fragment) << hex_diff(fragment, result.data);
  }
  EXPECT_EQ(drops(), before);
  EXPECT_EQ(flow_count(), 0u);
}

// The backend's answer, fragmented by its kernel: every fragment leaves
// from the service address; the first also from the service port.
TEST_P(FragmentTest, AFragmentedReplyLeavesFromTheServiceOnEveryFragment) {
  apply(service_spec(family(), protocol(), 3));
  const PacketSpec request = client_packet(family(), protocol());
  RunResult forwarded = run(build_packet(request));
  ASSERT_EQ(forwarded.verdict, XDP_REDIRECT);
  const int backend = backend_of(family(), forwarded.data);
  ASSERT_GE(backend, 0);

  PacketSpec reply = backend_reply(family(), request, backend, Bytes(1600, 0x5a));
  reply.dont_fragment = false;

  const std::vector<Bytes> fragments = fragment_frame(build_packet(reply), kPiece);
  const std::vector<Bytes> expected = fragment_frame(reply_output(family(), reply), kPiece);
  std::vector<Bytes> outputs;
  for (size_t i = 0; i < fragments.size(); ++i) {
    RunResult result = run_tc(fragments[i]);
    EXPECT_EQ(result.verdict, TC_ACT_REDIRECT) << "fragment " << i << ": TC verdict " << result.verdict;
    EXPECT_EQ(result.data, expected[i]) << "fragment " << i << "\n" << hex_diff(expected[i], result.data);
    outputs.push_back(result.data);
  }
  std::string why;
  EXPECT_TRUE(checksums_valid(reassemble(outputs), &why)) << "the client reassembles: " << why;

  // A later fragment of a datagram whose first was not seen may be
  // anything the backend's host sends: left alone.
  reply.ipv4_id = 0x7777;
  Bytes stray = fragment_frame(build_packet(reply), kPiece, 0x7777)[1];
  RunResult result = run_tc(stray);
  EXPECT_EQ(result.verdict, TC_ACT_OK);
  EXPECT_EQ(result.data, stray);
}

INSTANTIATE_TEST_SUITE_P(Families, FragmentTest,
                         ::testing::Values(FragmentCase{"Ipv4Tcp", &kIpv4, 6}, FragmentCase{"Ipv4Udp", &kIpv4, 17},
                                           FragmentCase{"Ipv6Tcp", &kIpv6, 6}, FragmentCase{"Ipv6Udp", &kIpv6, 17}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
