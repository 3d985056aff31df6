// What the data path does about failing backends: it counts unanswered
// and refused connection attempts per backend (for the agent's passive
// ejection) and retries a retransmitted SYN on another backend (L4 retry).
#include "datapath_fixture.h"

using namespace tollgate;
using namespace tollgate::test;

namespace {

struct FaultCase {
  const char* name;
  const Addresses* family;
};
void PrintTo(const FaultCase& test_case, std::ostream* out) { *out << test_case.name; }

class FaultTest : public DataPathTest, public ::testing::WithParamInterface<FaultCase> {
 protected:
  const Addresses& family() { return *GetParam().family; }

  // A client port whose new flow the data path sends to backend `number`.
  uint16_t port_to(int number, uint16_t from) {
    for (uint16_t port = from; port < from + 2000; ++port) {
      PacketSpec probe = client_packet(family(), 6, port);
      RunResult result = run(build_packet(probe));
      if (result.verdict == XDP_REDIRECT && backend_of(family(), result.data) == number) return port;
    }
    ADD_FAILURE() << "no client port maps to backend " << number;
    return 0;
  }

  PacketSpec reply_to(const PacketSpec& request, int backend, uint8_t flags) {
    return backend_reply(family(), request, backend, request.payload, flags);
  }

  // Whether the reply path takes backend `backend`'s SYN-ACK to `request`
  // as the flow's (and sends it to the client from the service).
  bool answer_reaches_client(const PacketSpec& request, int backend) {
    return run_tc(build_packet(reply_to(request, backend, kTcpSyn | kTcpAck))).verdict == TC_ACT_REDIRECT;
  }

  Bytes answer(const PacketSpec& request, int backend, uint8_t flags) {
    return build_packet(reply_to(request, backend, flags));
  }

  static constexpr auto kRetransmitDelay = std::chrono::seconds(1);
};

TEST_P(FaultTest, RetransmittedSynToASilentBackendIsRetriedOnAnother) {
  auto spec = service_spec(family(), 6, 3);
  apply(spec);
  PacketSpec syn = client_packet(family(), 6, 41000);
  RunResult first = run(build_packet(syn));
  ASSERT_EQ(first.verdict, XDP_REDIRECT);
  const int silent = backend_of(family(), first.data);
  ASSERT_GE(silent, 0);
  ASSERT_TRUE(answer_reaches_client(syn, silent));

  age_flow(family(), syn, kRetransmitDelay);  // the client's TCP waited 1 s
  RunResult retry = run(build_packet(syn));
  ASSERT_EQ(retry.verdict, XDP_REDIRECT) << verdict_name(retry.verdict);
  const int other = backend_of(family(), retry.data);
  ASSERT_GE(other, 0);
  EXPECT_NE(other, silent) << "the retransmitted SYN went to the backend that never answered";
  Bytes expected = expected_output(family(), syn, other);
  EXPECT_EQ(retry.data, expected) << hex_diff(expected, retry.data);

  tg_backend_health failed = backend_health(spec.address, spec.backends[silent].endpoint);
  EXPECT_EQ(failed.syn_retransmits, 1u);
  EXPECT_EQ(failed.retried, 1u);
  EXPECT_EQ(backend_counters(spec.address, spec.backends[other].endpoint).new_flows, 1u);
  EXPECT_FALSE(answer_reaches_client(syn, silent))
      << "a late SYN-ACK of the silent backend would still reach the client";
  EXPECT_TRUE(answer_reaches_client(syn, other));

  // The flow stays with the backend it was retried on; its handshake counts there.
  PacketSpec ack = syn;
  ack.tcp_flags = kTcpAck;
  EXPECT_EQ(backend_of(family(), run(build_packet(ack)).data), other);
  EXPECT_EQ(backend_health(spec.address, spec.backends[other].endpoint).handshakes, 1u);
  EXPECT_EQ(flow_of(family(), syn)->state, TG_FLOW_TCP_ESTABLISHED);
}

// The rehashed probes keep the weights, so a backend with nearly all of
// them fills every probe: the service's list of backends then gives the
// other one. Without it these flows would stay with the silent backend
// for every retransmission, and the client would time out.
TEST_P(FaultTest, EveryRetransmittedSynFindsTheOtherBackendWhateverItsWeight) {
  auto spec = service_spec(family(), 6, 2);
  spec.backends[0].weight = 1000;
  spec.backends[1].weight = 1;
  apply(spec);
  int retried = 0;
  for (uint16_t port = 46000; retried < 20 && port < 46100; ++port) {
    PacketSpec syn = client_packet(family(), 6, port);
    if (backend_of(family(), run(build_packet(syn)).data) != 0) continue;
    age_flow(family(), syn, kRetransmitDelay);
    RunResult retry = run(build_packet(syn));
    ASSERT_EQ(retry.verdict, XDP_REDIRECT) << verdict_name(retry.verdict);
    ASSERT_EQ(backend_of(family(), retry.data), 1) << "client port " << port << " stayed with the silent backend";
    ++retried;
  }
  EXPECT_EQ(retried, 20);
  EXPECT_EQ(backend_health(spec.address, spec.backends[0].endpoint).retried, 20u);
}

TEST_P(FaultTest, RetransmittedSynToABackendThatAnswersOthersStaysAndCounts) {
  auto spec = service_spec(family(), 6, 3);
  apply(spec);
  const uint16_t lost_port = port_to(0, 42000);
  PacketSpec lost = client_packet(family(), 6, lost_port);
  age_flow(family(), lost, kRetransmitDelay);

  // Another client completes a handshake with the same backend meanwhile.
  PacketSpec other = client_packet(family(), 6, port_to(0, lost_port + 1));
  other.tcp_flags = kTcpAck;
  run(build_packet(other));
  EXPECT_EQ(backend_health(spec.address, spec.backends[0].endpoint).handshakes, 1u);

  RunResult retry = run(build_packet(lost));
  EXPECT_EQ(backend_of(family(), retry.data), 0) << "a backend that is answering lost a flow to a retry";
  tg_backend_health health = backend_health(spec.address, spec.backends[0].endpoint);
  EXPECT_EQ(health.syn_retransmits, 1u);
  EXPECT_EQ(health.retried, 0u);
}

TEST_P(FaultTest, DuplicateSynIsNotARetransmission) {
  auto spec = service_spec(family(), 6, 3);
  apply(spec);
  PacketSpec syn = client_packet(family(), 6, 43000);
  int first = backend_of(family(), run(build_packet(syn)).data);
  ASSERT_GE(first, 0);
  // Within TG_SYN_RETRANSMIT_MIN_NS: a duplicate on the wire, not a retry.
  EXPECT_EQ(backend_of(family(), run(build_packet(syn)).data), first);
  tg_backend_health health = backend_health(spec.address, spec.backends[first].endpoint);
  EXPECT_EQ(health.syn_retransmits, 0u);
  EXPECT_EQ(health.retried, 0u);
}

TEST_P(FaultTest, WithNoOtherBackendTheRetransmittedSynStays) {
  auto spec = service_spec(family(), 6, 2);
  spec.backends[1].state = BackendState::draining;
  apply(spec);
  PacketSpec syn = client_packet(family(), 6, 44000);
  ASSERT_EQ(backend_of(family(), run(build_packet(syn)).data), 0);
  age_flow(family(), syn, kRetransmitDelay);
  RunResult retry = run(build_packet(syn));
  ASSERT_EQ(retry.verdict, XDP_REDIRECT);
  EXPECT_EQ(backend_of(family(), retry.data), 0) << "retried onto a draining backend";
  EXPECT_EQ(backend_health(spec.address, spec.backends[0].endpoint).syn_retransmits, 1u);
  EXPECT_EQ(backend_health(spec.address, spec.backends[0].endpoint).retried, 0u);
  EXPECT_TRUE(answer_reaches_client(syn, 0));
}

TEST_P(FaultTest, ResetAnsweringASynCountsOnceAsARefusal) {
  auto spec = service_spec(family(), 6, 3);
  apply(spec);
  PacketSpec syn = client_packet(family(), 6, 45000);
  int backend = backend_of(family(), run(build_packet(syn)).data);
  ASSERT_GE(backend, 0);

  RunResult refused = run_tc(answer(syn, backend, kTcpRst | kTcpAck));
  EXPECT_EQ(refused.verdict, TC_ACT_REDIRECT) << "the client must still get the RST";
  run_tc(answer(syn, backend, kTcpRst | kTcpAck));
  EXPECT_EQ(backend_health(spec.address, spec.backends[backend].endpoint).syn_resets, 1u);

  // A RST on an established connection is not a refused connection attempt.
  PacketSpec established = client_packet(family(), 6, port_to(backend, 45001));
  established.tcp_flags = kTcpAck;
  run(build_packet(established));
  run_tc(answer(established, backend, kTcpRst | kTcpAck));
  tg_backend_health health = backend_health(spec.address, spec.backends[backend].endpoint);
  EXPECT_EQ(health.syn_resets, 1u);
  EXPECT_EQ(health.handshakes, 1u);
}

TEST_P(FaultTest, ReusedBackendSlotStartsWithZeroHealthCounters) {
  auto spec = service_spec(family(), 6, 1);
  apply(spec);
  PacketSpec syn = client_packet(family(), 6, 46000);
  run(build_packet(syn));
  run_tc(answer(syn, 0, kTcpRst | kTcpAck));
  ASSERT_EQ(backend_health(spec.address, spec.backends[0].endpoint).syn_resets, 1u);
  auto index = dataplane_->backend_index(spec.address, spec.backends[0].endpoint);
  ASSERT_TRUE(dataplane_->remove_service(spec.address));
  auto replacement = service_spec(family(), 6, 2);
  replacement.backends.erase(replacement.backends.begin());
  apply(replacement);
  ASSERT_EQ(dataplane_->backend_index(replacement.address, replacement.backends[0].endpoint), index);
  EXPECT_EQ(backend_health(replacement.address, replacement.backends[0].endpoint).syn_resets, 0u);
}

INSTANTIATE_TEST_SUITE_P(Families, FaultTest, ::testing::Values(FaultCase{"Ipv4", &kIpv4}, FaultCase{"Ipv6", &kIpv6}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
