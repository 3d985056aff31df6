// The schedulers in the XDP program: how new flows spread over a service's
// backends (README, "Schedulers"), fed through BPF_PROG_TEST_RUN.
#include <sched.h>

#include <cmath>
#include <set>

#include "active_counts.h"
#include "datapath_fixture.h"
#include "flows.h"

using namespace tollgate;
using namespace tollgate::test;

namespace {

struct SchedulerCase {
  const char* name;
  const Addresses* family;
};
void PrintTo(const SchedulerCase& test_case, std::ostream* out) { *out << test_case.name; }

class SchedulerTest : public DataPathTest, public ::testing::WithParamInterface<SchedulerCase> {
 protected:
  const Addresses& family() { return *GetParam().family; }

  ServiceSpec scheduled(Scheduler scheduler, std::vector<uint32_t> weights,
                        uint32_t table_size = TG_MAGLEV_DEFAULT_SIZE) {
    ServiceSpec spec = service_spec(family(), 6, weights.size(), weights);
    spec.scheduler = scheduler;
    spec.maglev_size = table_size;
    return spec;
  }

  // Client `client` (0 .. 65535 of a /16 of its own), port `port`.
  PacketSpec syn_from(uint32_t client, uint16_t port) {
    PacketSpec syn = client_packet(family(), 6, port);
    syn.src = family().ipv6 ? fmt::format("2001:db8:9::{:x}:{:x}", client >> 8, client & 0xff)
                            : fmt::format("198.19.{}.{}", client >> 8, client & 0xff);
    return syn;
  }

  // The backend (number) the new flow `syn` is sent to; -1: none.
  int new_flow(const PacketSpec& syn) {
    RunResult result = run(build_packet(syn));
    return result.verdict == XDP_REDIRECT ? backend_of(family(), result.data) : -1;
  }

  // New flows from one client, ports from 1024 on: how many each backend took.
  std::vector<size_t> spread(size_t flows, size_t backends) {
    std::vector<size_t> counts(backends);
    for (size_t i = 0; i < flows; ++i) {
      int backend = new_flow(client_packet(family(), 6, static_cast<uint16_t>(1024 + i)));
      if (backend < 0 || static_cast<size_t>(backend) >= backends) {
        ADD_FAILURE() << "flow " << i << " went to no backend of the service";
        return counts;
      }
      ++counts[static_cast<size_t>(backend)];
    }
    return counts;
  }

  static constexpr size_t kFlows = 30000;
};

// Each count within `sigmas` binomial standard deviations of its weight's
// share of the flows, widened by `table_error` (a share: how far the table
// itself may be from the weights).
void expect_shares(const std::vector<size_t>& counts, const std::vector<uint32_t>& weights, double sigmas,
                   double table_error) {
  double total_weight = 0;
  size_t flows = 0;
  for (uint32_t weight : weights) total_weight += weight;
  for (size_t count : counts) flows += count;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double share = weights[i] / total_weight;
    const double bound = sigmas * std::sqrt(flows * share * (1 - share)) + table_error * flows;
    EXPECT_NEAR(static_cast<double>(counts[i]), flows * share, bound)
        << "backend " << i << " of weight " << weights[i] << " took " << counts[i] << " of " << flows;
  }
}

const std::vector<uint32_t> kWeights = {1, 2, 3};

TEST_P(SchedulerTest, MaglevSpreadsNewFlowsByWeight) {
  apply(scheduled(Scheduler::maglev, kWeights));
  expect_shares(spread(kFlows, 3), kWeights, 5, 0.01);
}

// Round robin deals out its sequence in order: over N flows each backend's
// count is within a flow or two of its share, far inside 1%.
TEST_P(SchedulerTest, RoundRobinDealsEachBackendItsShareExactly) {
  apply(scheduled(Scheduler::round_robin, kWeights));
  const std::vector<size_t> counts = spread(kFlows, 3);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(static_cast<double>(counts[i]), kFlows * kWeights[i] / 6.0, 2.0) << i;
}

// Smooth: weights 5:1:1 give A A B A C A A, not A A A A A B C; and the one
// cursor is shared by every CPU, so flows arriving on alternate CPUs take
// the sequence in the same order.
TEST_P(SchedulerTest, RoundRobinIsSmoothAndOneSequenceOnEveryCpu) {
  apply(scheduled(Scheduler::round_robin, {5, 1, 1}, 7));
  std::vector<int> order;
  for (uint16_t port = 2000; port < 2014; ++port) order.push_back(new_flow(client_packet(family(), 6, port)));
  const int a = 0, b = order[2], c = order[4];
  EXPECT_EQ(std::set<int>({b, c}), std::set<int>({1, 2}));
  const std::vector<int> smooth = {a, a, b, a, c, a, a, a, a, b, a, c, a, a};
  EXPECT_EQ(order, smooth);

  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE && cpus.size() < 2; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  if (cpus.size() < 2) GTEST_SKIP() << "one CPU: nothing to alternate between";
  order.clear();
  for (uint16_t port = 3000; port < 3014; ++port) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[port % 2], &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
    order.push_back(new_flow(client_packet(family(), 6, port)));
  }
  sched_setaffinity(0, sizeof(allowed), &allowed);
  EXPECT_EQ(order, smooth) << "flows on alternate CPUs took the sequence out of order";
}

TEST_P(SchedulerTest, RandomSpreadsNewFlowsByWeight) {
  apply(scheduled(Scheduler::random, kWeights));
  const std::vector<size_t> counts = spread(kFlows, 3);
  expect_shares(counts, kWeights, 5, 0);
  // Not round robin in disguise: consecutive flows do not follow the sequence.
  apply(scheduled(Scheduler::random, {1, 1}, 2));
  std::vector<size_t> runs(2);
  int previous = -1;
  for (uint16_t port = 40000; port < 40200; ++port) {
    int backend = new_flow(client_packet(family(), 6, port));
    ASSERT_GE(backend, 0);
    ++runs[backend == previous];
    previous = backend;
  }
  EXPECT_GT(runs[1], 50u) << "200 flows, a backend hardly ever twice in a row";
  // Not a hash in disguise: the same connection, opened afresh, lands anywhere.
  const PacketSpec syn = client_packet(family(), 6, 41000);
  std::set<int> landed;
  for (int i = 0; i < 40; ++i) {
    landed.insert(new_flow(syn));
    const tg_flow_key key = flow_key(family(), syn);
    ASSERT_EQ(bpf_map_delete_elem(datapath_->maps().flows.fd(), &key), 0);
  }
  EXPECT_EQ(landed, std::set<int>({0, 1})) << "40 openings of one connection";
}

TEST_P(SchedulerTest, SourceHashKeepsAClientOnOneBackendAndSpreadsClientsByWeight) {
  ServiceSpec spec = scheduled(Scheduler::source_hash, kWeights);
  apply(spec);
  std::set<int> backends;
  for (uint16_t port = 1024; port < 2024; ++port) backends.insert(new_flow(syn_from(7, port)));
  EXPECT_EQ(backends.size(), 1u) << "1,000 ports of one client went to several backends";
  EXPECT_GE(*backends.begin(), 0);

  std::vector<size_t> counts(3);
  for (uint32_t client = 0; client < kFlows; ++client) {
    int backend = new_flow(syn_from(client, 5000));
    ASSERT_GE(backend, 0) << "client " << client;
    ++counts[static_cast<size_t>(backend)];
  }
  expect_shares(counts, kWeights, 5, 0.01);

  // With a prefix, the clients of one network share a backend.
  spec.source_prefix = family().ipv6 ? 120 : 24;
  apply(spec);
  for (uint32_t network = 0; network < 20; ++network) {
    std::set<int> chosen;
    for (uint32_t host = 0; host < 50; ++host) chosen.insert(new_flow(syn_from(network << 8 | host, 6000)));
    EXPECT_EQ(chosen.size(), 1u) << "network " << network;
  }
}

// Backend states hold for every scheduler: a draining backend gets no new
// flow, and a change of scheduler leaves tracked flows where they are.
TEST_P(SchedulerTest, EverySchedulerHonoursStatesAndMovesNoTrackedFlow) {
  ServiceSpec spec = scheduled(Scheduler::maglev, {1, 1, 1});
  apply(spec);
  std::vector<int> tracked;
  for (uint16_t port = 7000; port < 7030; ++port) tracked.push_back(new_flow(client_packet(family(), 6, port)));
  for (Scheduler scheduler : {Scheduler::round_robin, Scheduler::random, Scheduler::source_hash,
                              Scheduler::least_connections, Scheduler::least_requests}) {
    spec.scheduler = scheduler;
    spec.backends[0].state = BackendState::draining;
    apply(spec);
    for (uint16_t port = 8000; port < 8100; ++port) {
      int backend = new_flow(syn_from(port, port));
      EXPECT_TRUE(backend == 1 || backend == 2) << scheduler_name(scheduler) << ": " << backend;
    }
    for (uint16_t port = 7000; port < 7030; ++port) {
      PacketSpec ack = client_packet(family(), 6, port);
      ack.tcp_flags = kTcpAck;
      EXPECT_EQ(backend_of(family(), run(build_packet(ack)).data), tracked[port - 7000])
          << scheduler_name(scheduler) << ": tracked flow from port " << port << " moved";
    }
    spec.backends[0].state = BackendState::up;
    apply(spec);
  }
}

// A retransmitted SYN of a silent backend's flow goes to another backend
// under every scheduler (the retry probes the same table).
TEST_P(SchedulerTest, EverySchedulerRetriesASilentBackendsSynElsewhere) {
  for (Scheduler scheduler : {Scheduler::round_robin, Scheduler::random, Scheduler::source_hash,
                              Scheduler::least_connections, Scheduler::least_requests}) {
    apply(scheduled(scheduler, {1, 1, 1}));
    for (uint16_t port = 9000; port < 9020; ++port) {
      PacketSpec syn = syn_from(port, port);
      const int silent = new_flow(syn);
      ASSERT_GE(silent, 0);
      age_flow(family(), syn, std::chrono::seconds(1));
      const int other = new_flow(syn);
      EXPECT_GE(other, 0) << scheduler_name(scheduler);
      EXPECT_NE(other, silent) << scheduler_name(scheduler) << ": port " << port;
    }
  }
}

// --- least connections -----------------------------------------------------

class LeastConnectionsTest : public SchedulerTest {
 protected:
  int64_t active(const ServiceSpec& spec, int backend) {
    auto index = dataplane_->backend_index(spec.address, spec.backends[static_cast<size_t>(backend)].endpoint);
    EXPECT_TRUE(index);
    int64_t count = 0;
    EXPECT_EQ(bpf_map_lookup_elem(datapath_->maps().backend_active.fd(), &*index, &count), 0);
    return count;
  }
  // Least requests' new flows of the backend, both windows.
  uint64_t recent(const ServiceSpec& spec, int backend) {
    auto index = dataplane_->backend_index(spec.address, spec.backends[static_cast<size_t>(backend)].endpoint);
    EXPECT_TRUE(index);
    tg_recent_flows flows{};
    EXPECT_EQ(bpf_map_lookup_elem(datapath_->maps().backend_recent.fd(), &*index, &flows), 0);
    return flows.current + flows.previous;
  }
  std::vector<int64_t> actives(const ServiceSpec& spec) {
    std::vector<int64_t> counts;
    for (size_t i = 0; i < spec.backends.size(); ++i) counts.push_back(active(spec, static_cast<int>(i)));
    return counts;
  }
  PacketSpec with_flags(PacketSpec packet, uint8_t flags) {
    packet.tcp_flags = flags;
    return packet;
  }
};

// A backend holding 50 long-lived connections gets no new ones while the
// others have fewer; the counts follow flows as they open and close.
TEST_P(LeastConnectionsTest, NewFlowsGoWhereFewestConnectionsAre) {
  ServiceSpec spec = scheduled(Scheduler::least_connections, {1, 1, 1});
  spec.backends[1].state = BackendState::draining;
  spec.backends[2].state = BackendState::draining;
  apply(spec);
  for (uint16_t port = 10000; port < 10050; ++port) ASSERT_EQ(new_flow(client_packet(family(), 6, port)), 0);
  EXPECT_EQ(actives(spec), (std::vector<int64_t>{50, 0, 0}));

  spec.backends[1].state = BackendState::up;
  spec.backends[2].state = BackendState::up;
  apply(spec);
  std::vector<size_t> counts(3);
  for (uint16_t port = 11000; port < 11060; ++port)
    ++counts[static_cast<size_t>(new_flow(client_packet(family(), 6, port)))];
  EXPECT_EQ(counts[0], 0u) << "the busy backend got new flows: " << counts[0] << " of 60";
  // P2C: the two idle ones share the flows, neither far ahead of the other.
  EXPECT_NEAR(static_cast<double>(counts[1]), 30, 8) << counts[1] << " and " << counts[2];
  EXPECT_EQ(actives(spec)[0], 50);

  // Closing (the client's FIN, a RST) gives the connections back, once each.
  for (uint16_t port = 10000; port < 10025; ++port) {
    run(build_packet(with_flags(client_packet(family(), 6, port), kTcpFin | kTcpAck)));
    run(build_packet(with_flags(client_packet(family(), 6, port), kTcpAck)));  // its last ACK
  }
  for (uint16_t port = 10025; port < 10050; ++port)
    run(build_packet(with_flags(client_packet(family(), 6, port), kTcpRst)));
  EXPECT_EQ(actives(spec)[0], 0);
  for (uint16_t port = 11000; port < 11060; ++port)
    run(build_packet(with_flags(client_packet(family(), 6, port), kTcpRst)));
  EXPECT_EQ(actives(spec), (std::vector<int64_t>{0, 0, 0}));
}

// Weights: a backend of weight 3 holds three times the connections of one of weight 1.
TEST_P(LeastConnectionsTest, ConnectionsFollowTheWeights) {
  ServiceSpec spec = scheduled(Scheduler::least_connections, {1, 3});
  apply(spec);
  for (uint16_t port = 12000; port < 12400; ++port) ASSERT_GE(new_flow(client_packet(family(), 6, port)), 0);
  const std::vector<int64_t> counts = actives(spec);
  EXPECT_NEAR(static_cast<double>(counts[1]) / static_cast<double>(counts[0]), 3.0, 0.3)
      << counts[0] << " and " << counts[1];
}

// Counts return to zero after the idle timeout (the agent's sweep takes
// back what it deletes), and after flows lost without telling (deleted
// behind the data path's back, as the overflow's LRU evicts): the sweep's
// reconciliation corrects a difference seen twice in a row.
TEST_P(LeastConnectionsTest, CountsReturnToZeroAfterIdleTimeoutsAndLostFlows) {
  ServiceSpec spec = scheduled(Scheduler::least_connections, {1, 1});
  spec.backends[1].state = BackendState::draining;
  apply(spec);
  for (uint16_t port = 13000; port < 13020; ++port) ASSERT_EQ(new_flow(client_packet(family(), 6, port)), 0);
  ASSERT_EQ(active(spec, 0), 20);
  auto counts = ActiveCounts::map(datapath_->maps().backend_active);
  ASSERT_TRUE(counts) << counts.error().message;

  for (uint16_t port = 13000; port < 13010; ++port)
    age_flow(family(), client_packet(family(), 6, port), std::chrono::hours(2));
  auto swept = sweep_flows(datapath_->maps(), &*counts);
  ASSERT_TRUE(swept) << swept.error().message;
  EXPECT_EQ(*swept, 10u);
  EXPECT_EQ(active(spec, 0), 10) << "the swept flows' connections were not given back";

  for (uint16_t port = 13010; port < 13020; ++port) {
    const tg_flow_key key = flow_key(family(), client_packet(family(), 6, port));
    ASSERT_EQ(bpf_map_delete_elem(datapath_->maps().flows.fd(), &key), 0);
  }
  ASSERT_TRUE(sweep_flows(datapath_->maps(), &*counts));
  EXPECT_EQ(active(spec, 0), 10) << "corrected at the first sight: a flow that opens during a walk would be too";
  ASSERT_TRUE(sweep_flows(datapath_->maps(), &*counts));
  EXPECT_EQ(active(spec, 0), 0) << "the lost flows' count stays";
  ASSERT_TRUE(sweep_flows(datapath_->maps(), &*counts));
  EXPECT_EQ(active(spec, 0), 0);
}

// A retried SYN takes its connection to the backend it moves to.
TEST_P(LeastConnectionsTest, ARetriedFlowTakesItsConnectionAlong) {
  ServiceSpec spec = scheduled(Scheduler::least_connections, {1, 1});
  apply(spec);
  const PacketSpec syn = client_packet(family(), 6, 14000);
  const int silent = new_flow(syn);
  ASSERT_GE(silent, 0);
  EXPECT_EQ(active(spec, silent), 1);
  age_flow(family(), syn, std::chrono::seconds(1));
  const int other = new_flow(syn);
  ASSERT_EQ(other, 1 - silent);
  EXPECT_EQ(active(spec, silent), 0);
  EXPECT_EQ(active(spec, other), 1);
}

// --- least requests --------------------------------------------------------

// A backend that took many new flows in the last second gets none while the
// others took fewer, however short the flows were (a RST closes each at
// once: least connections would see no difference); once its window ages
// out, it gets them again.
TEST_P(LeastConnectionsTest, LeastRequestsSendsNewFlowsWhereFewestBeganLately) {
  ServiceSpec spec = scheduled(Scheduler::least_requests, {1, 1, 1});
  spec.backends[1].state = BackendState::draining;
  spec.backends[2].state = BackendState::draining;
  apply(spec);
  auto short_flow = [this](uint16_t port) {
    const int backend = new_flow(client_packet(family(), 6, port));
    run(build_packet(with_flags(client_packet(family(), 6, port), kTcpRst)));
    return backend;
  };
  for (uint16_t port = 15000; port < 15030; ++port) ASSERT_EQ(short_flow(port), 0);
  spec.backends[1].state = BackendState::up;
  spec.backends[2].state = BackendState::up;
  apply(spec);
  std::vector<size_t> counts(3);
  for (uint16_t port = 15100; port < 15140; ++port) ++counts[static_cast<size_t>(short_flow(port))];
  EXPECT_EQ(counts[0], 0u) << "the backend with 30 flows in the last second took " << counts[0] << " of 40";
  EXPECT_GT(counts[1], 10u);
  EXPECT_GT(counts[2], 10u);

  // Its flows were in windows now gone: it has the fewest again.
  auto index = dataplane_->backend_index(spec.address, spec.backends[0].endpoint);
  ASSERT_TRUE(index);
  tg_recent_flows recent{};
  ASSERT_EQ(bpf_map_lookup_elem(datapath_->maps().backend_recent.fd(), &*index, &recent), 0);
  EXPECT_GE(recent.current + recent.previous, 30u);
  recent.window -= 5;
  ASSERT_EQ(bpf_map_update_elem(datapath_->maps().backend_recent.fd(), &*index, &recent, BPF_EXIST), 0);
  counts.assign(3, 0);
  // It wins every pair it is drawn into (5 in 9) until it catches up: some 22
  // of 40, the others some 9 each.
  for (uint16_t port = 15200; port < 15240; ++port) ++counts[static_cast<size_t>(short_flow(port))];
  EXPECT_GT(counts[0], counts[1]) << counts[0] << ", " << counts[1] << ", " << counts[2];
  EXPECT_GT(counts[0], counts[2]) << counts[0] << ", " << counts[1] << ", " << counts[2];
}

// A flow that L4 retry moves is a new flow where it lands.
TEST_P(LeastConnectionsTest, LeastRequestsCountsARetriedFlowWhereItLands) {
  ServiceSpec spec = scheduled(Scheduler::least_requests, {1, 1});
  apply(spec);
  const PacketSpec syn = client_packet(family(), 6, 14500);
  const int silent = new_flow(syn);
  ASSERT_GE(silent, 0);
  EXPECT_EQ(recent(spec, silent), 1u);
  EXPECT_EQ(recent(spec, 1 - silent), 0u);
  age_flow(family(), syn, std::chrono::seconds(1));
  ASSERT_EQ(new_flow(syn), 1 - silent);
  EXPECT_EQ(recent(spec, 1 - silent), 1u);
}

TEST_P(LeastConnectionsTest, LeastRequestsFollowsTheWeights) {
  ServiceSpec spec = scheduled(Scheduler::least_requests, {1, 3});
  apply(spec);
  std::vector<size_t> counts(2);
  for (uint16_t port = 16000; port < 16400; ++port) {
    const int backend = new_flow(client_packet(family(), 6, port));
    ASSERT_GE(backend, 0);
    ++counts[static_cast<size_t>(backend)];
  }
  EXPECT_NEAR(static_cast<double>(counts[1]) / static_cast<double>(counts[0]), 3.0, 0.4)
      << counts[0] << " and " << counts[1];
}

INSTANTIATE_TEST_SUITE_P(Families, LeastConnectionsTest,
                         ::testing::Values(SchedulerCase{"Ipv4", &kIpv4}, SchedulerCase{"Ipv6", &kIpv6}),
                         [](const auto& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(Families, SchedulerTest,
                         ::testing::Values(SchedulerCase{"Ipv4", &kIpv4}, SchedulerCase{"Ipv6", &kIpv6}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
