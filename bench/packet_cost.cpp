#include "packet_cost.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>

#include "map_keys.h"

namespace tollgate::datapath_bench {
namespace {

using namespace test;

// One path through a program: the packet of each iteration, the verdict
// every iteration must return, a check of each output and a proof per
// round (both return what went wrong, or nothing).
struct Scenario {
  std::string name;
  std::string what;
  bool tc = false;
  int verdict = XDP_REDIRECT;
  std::function<Bytes(size_t)> packet;
  // A packet sent before each iteration's own (the handshake's SYN before
  // its ACK), its verdict XDP_REDIRECT; counted in the figure, and in the
  // floor's, only when `time_first`.
  std::function<Bytes(size_t)> first;
  bool time_first = false;
  std::function<std::string(const Bytes& in, const Bytes& out)> check;
  std::function<void()> before_round = [] {};
  std::function<std::string(size_t iterations)> after_round = [](size_t) { return std::string(); };
};

const char* verdict_name(bool tc, int verdict) {
  if (tc) return verdict == TC_ACT_OK ? "TC_ACT_OK" : verdict == TC_ACT_REDIRECT ? "TC_ACT_REDIRECT" : "TC_ACT_?";
  switch (verdict) {
    case XDP_DROP: return "XDP_DROP";
    case XDP_PASS: return "XDP_PASS";
    case XDP_TX: return "XDP_TX";
    case XDP_REDIRECT: return "XDP_REDIRECT";
    default: return "XDP_?";
  }
}

// Mean kernel-measured ns per run of `fd` over `iterations` runs, every
// verdict and output checked.
double mean_ns(Bench& bench, int fd, const Scenario& scenario, int verdict, size_t iterations, bool check) {
  uint64_t total = 0;
  for (size_t i = 0; i < iterations; ++i) {
    if (scenario.first && (check || scenario.time_first)) {
      Bench::Run first = bench.run(fd, scenario.tc, scenario.first(i));
      if (check && first.verdict != XDP_REDIRECT)
        fail(fmt::format("{}: iteration {}: the first packet returned {}", scenario.name, i, first.verdict));
      if (scenario.time_first) total += first.duration_ns;
    }
    const Bytes packet = scenario.packet(i);
    Bench::Run run = bench.run(fd, scenario.tc, packet);
    if (run.verdict != verdict)
      fail(fmt::format("{}: iteration {} returned {} ({}), expected {}", scenario.name, i, run.verdict,
                       verdict_name(scenario.tc, run.verdict), verdict_name(scenario.tc, verdict)));
    if (check && scenario.check) {
      if (auto why = scenario.check(packet, run.out); !why.empty())
        fail(fmt::format("{}: iteration {}: {}", scenario.name, i, why));
    }
    total += run.duration_ns;
  }
  return static_cast<double>(total) / static_cast<double>(iterations);
}

json measure(Bench& bench, const Scenario& scenario, int rounds, size_t iterations) {
  std::vector<double> program, floor, above;
  const int floor_verdict = scenario.tc ? TC_ACT_OK : XDP_PASS;
  const int program_fd = scenario.tc ? bench.datapath().tc_program_fd() : bench.datapath().xdp_program_fd();
  for (int round = 0; round < rounds; ++round) {
    scenario.before_round();
    const double base = mean_ns(bench, bench.floor_fd(scenario.tc), scenario, floor_verdict, iterations, false);
    const double cost = mean_ns(bench, program_fd, scenario, scenario.verdict, iterations, true);
    if (auto why = scenario.after_round(iterations); !why.empty())
      fail(fmt::format("{}: round {}: {}", scenario.name, round, why));
    program.push_back(cost);
    floor.push_back(base);
    above.push_back(cost - base);
  }
  json result = {{"name", scenario.name},
                 {"what", scenario.what},
                 {"verdict", verdict_name(scenario.tc, scenario.verdict)},
                 {"iterations", iterations},
                 {"ns", summary(program)},
                 {"floor_ns", summary(floor)},
                 {"above_floor_ns", summary(above)}};
  std::fprintf(stderr, "  %-22s %7.1f ns (floor %5.1f) -> %6.1f ns above the floor\n", scenario.name.c_str(),
               result["ns"]["median"].get<double>(), result["floor_ns"]["median"].get<double>(),
               result["above_floor_ns"]["median"].get<double>());
  return result;
}

// --- scenarios ------------------------------------------------------------

std::string same_frame(const Bytes& expected, const Bytes& out) {
  return out == expected ? std::string()
                         : "output differs from the established flow's frame:\n" + hex_diff(expected, out);
}

// `service`: the address (default the bench's kService, kService6).
Scenario established(Bench& bench, const std::string& name, bool ipv6, uint8_t protocol, uint16_t port,
                     const std::string& service = {}) {
  auto reference = std::make_shared<Bytes>();
  PacketSpec spec = client_packet(ipv6, protocol,
                                  !service.empty() ? service
                                  : ipv6           ? kService6
                                                   : kService,
                                  port, kTcpSyn);
  PacketSpec next = spec;
  next.tcp_flags = kTcpAck;
  const Bytes packet = build_packet(next);
  Scenario scenario;
  scenario.name = name;
  scenario.what = fmt::format("{} {} packet of a tracked flow (conntrack hit), NAT, forward", ipv6 ? "IPv6" : "IPv4",
                              protocol == 6 ? "TCP" : "UDP");
  scenario.packet = [packet](size_t) { return packet; };
  // Again if a round of new flows evicted it (both tables full).
  scenario.before_round = [&bench, spec, reference] {
    tg_flow flow{};
    if (reference->empty() || !bench.flow_table(flow_key_of(spec), &flow)) *reference = bench.establish(spec);
  };
  scenario.check = [reference](const Bytes&, const Bytes& out) { return same_frame(*reference, out); };
  return scenario;
}

// The packets of distinct new flows (one source port each): a SYN, or the
// handshake's ACK after it.
Bytes handshake_packet(const std::string& service, size_t i, uint8_t flags) {
  return build_packet(client_packet(false, 6, service, static_cast<uint16_t>(1024 + i % 60000), flags));
}

std::string sent_to_a_backend(const Bytes&, const Bytes& out) {
  return destination_of(out, false).first >= 0 ? std::string() : std::string("not sent to a backend");
}

// Proof of a round of new flows: each iteration's flow is in a flow table,
// in `state`; they are deleted after it (untimed), and nothing else is.
void prove_new_flows(Bench& bench, Scenario& scenario, uint8_t state, const std::string& service = kService) {
  scenario.after_round = [&bench, state, service](size_t iterations) {
    size_t found = 0;
    for (size_t i = 0; i < iterations; ++i) {
      const tg_flow_key key =
          flow_key_of(client_packet(false, 6, service, static_cast<uint16_t>(1024 + i % 60000), kTcpSyn));
      for (const MapHandle* table : {&bench.maps().flows, &bench.maps().overflow_flows}) {
        tg_flow flow{};
        if (bpf_map_lookup_elem(table->fd(), &key, &flow) != 0) continue;
        found += flow.state == state;
        bpf_map_delete_elem(table->fd(), &key);
      }
    }
    return found == iterations ? std::string() : fmt::format("{} of {} flows recorded", found, iterations);
  };
}

// SYNs of distinct flows: every one a new flow, steered by the Maglev
// table, its entry written once.
Scenario new_flows(Bench& bench, const std::string& name, const std::string& service = kService) {
  Scenario scenario;
  scenario.name = name;
  scenario.what = "IPv4 TCP SYN of a new flow: Maglev lookup, flow recorded, NAT, forward";
  scenario.packet = [service](size_t i) { return handshake_packet(service, i, kTcpSyn); };
  scenario.check = sent_to_a_backend;
  prove_new_flows(bench, scenario, TG_FLOW_TCP_SYN, service);
  return scenario;
}

// The handshake's ACK of a flow whose SYN went just before it (untimed):
// what the flow's second packet costs (with `with_syn`, the SYN and the ACK
// together: what a connection's opening costs the data path).
Scenario handshake_acks(Bench& bench, const std::string& name, bool with_syn) {
  Scenario scenario;
  scenario.name = name;
  scenario.what = with_syn ? "IPv4 TCP SYN and then its ACK, both timed: a connection's opening, the two summed"
                           : "IPv4 TCP handshake ACK of a flow seen once (its SYN sent untimed before it)";
  scenario.first = [](size_t i) { return handshake_packet(kService, i, kTcpSyn); };
  scenario.time_first = with_syn;
  scenario.packet = [](size_t i) { return handshake_packet(kService, i, kTcpAck); };
  scenario.check = sent_to_a_backend;
  prove_new_flows(bench, scenario, TG_FLOW_TCP_ESTABLISHED);
  return scenario;
}

Scenario dropped(Bench& bench, const std::string& name, const std::string& what, const char* service, int reason,
                 bool rate_limited) {
  Scenario scenario;
  scenario.name = name;
  scenario.what = what;
  scenario.verdict = XDP_DROP;
  const Bytes packet = build_packet(client_packet(false, 6, service, 40000, kTcpSyn));
  scenario.packet = [packet](size_t) { return packet; };
  auto before = std::make_shared<uint64_t>(0);
  scenario.before_round = [&bench, packet, before, rate_limited, reason] {
    if (rate_limited) {
      bench.xdp(packet);
      const int fd = bench.maps().source_buckets.fd();
      tg_bucket_key key{};
      if (bpf_map_get_next_key(fd, nullptr, &key) != 0) fail("no source bucket after a packet");
      tg_bucket bucket{};
      if (bpf_map_lookup_elem(fd, &key, &bucket) != 0) fail("source bucket lookup");
      bucket.packet_tat_ns = monotonic_ns() + 3600ULL * 1'000'000'000ULL;
      if (bpf_map_update_elem(fd, &key, &bucket, BPF_EXIST) != 0) fail("source bucket update");
    }
    *before = bench.drops(reason);
  };
  scenario.after_round = [&bench, before, reason](size_t iterations) {
    const uint64_t counted = bench.drops(reason) - *before;
    return counted == iterations ? std::string() : fmt::format("{} drops counted for {} packets", counted, iterations);
  };
  return scenario;
}

Scenario not_a_service() {
  Scenario scenario;
  scenario.name = "not_a_service";
  scenario.what = "IPv4 TCP packet to an address that is no service: parse, the address filter, XDP_PASS";
  scenario.verdict = XDP_PASS;
  const Bytes packet = build_packet(client_packet(false, 6, kNotAService, 40000, kTcpAck));
  scenario.packet = [packet](size_t) { return packet; };
  scenario.check = [](const Bytes& in, const Bytes& out) { return same_frame(in, out); };
  return scenario;
}

// A backend's reply to an established flow: the TC program finds its flow
// from the backend's endpoint, restores the service address and port, forwards.
Scenario tc_reply(Bench& bench) {
  auto reply = std::make_shared<Bytes>();
  auto reference = std::make_shared<Bytes>();
  Scenario scenario;
  scenario.name = "tc_reply";
  scenario.what =
      "IPv4 TCP reply of a tracked flow (TC): its flow found from the backend's endpoint, source NAT back, forward";
  scenario.tc = true;
  scenario.verdict = TC_ACT_REDIRECT;
  scenario.before_round = [&bench, reply, reference] {
    if (!reply->empty()) return;
    PacketSpec request = client_packet(false, 6, kService, 40100, kTcpSyn);
    const Bytes forwarded = bench.establish(request);
    const auto [backend, port] = destination_of(forwarded, false);
    PacketSpec answer = request;
    answer.src = kBackends[backend];
    answer.dst = kClient;
    answer.src_port = port;
    answer.dst_port = 40100;
    answer.tcp_flags = kTcpAck;
    answer.src_mac = TestNetwork::backend_mac(backend);
    answer.dst_mac = TestNetwork::kBackendSideMac;
    *reply = build_packet(answer);
    Bench::Run first = bench.tc(*reply);
    uint8_t service[4];
    inet_pton(AF_INET, kService, service);
    std::string why;
    if (first.verdict != TC_ACT_REDIRECT || first.out.size() < 34 ||
        !std::equal(service, service + 4, first.out.begin() + 26) || !checksums_valid(first.out, &why))
      fail("tc_reply: the reply does not leave with the service address " + why);
    *reference = first.out;
  };
  scenario.packet = [reply](size_t) { return *reply; };
  scenario.check = [reference](const Bytes&, const Bytes& out) { return same_frame(*reference, out); };
  return scenario;
}

// Established and new-flow cost on a data path holding the given state;
// `before_round` restores it before each round.
json scale_point(
    Bench& bench, const std::string& dimension, size_t size, int rounds, size_t iterations,
    const std::function<void()>& before_round = [] {}) {
  std::fprintf(stderr, " %s = %zu:\n", dimension.c_str(), size);
  json point = {{"dimension", dimension}, {"size", size}};
  for (auto [field, scenario] : {std::pair{"established", established(bench, "tcp_established", false, 6, 41000)},
                                 std::pair{"new_flow", new_flows(bench, "tcp_new_flow")}}) {
    auto own = scenario.before_round;
    scenario.before_round = [before_round, own] {
      before_round();
      own();
    };
    point[field] = measure(bench, scenario, rounds, iterations);
  }
  return point;
}

// Each policy feature on, where its packets pass: its cost over the same
// scenario with it off (tcp_established, tcp_new_flow), in the same run.
std::vector<Scenario> feature_scenarios(Bench& bench) {
  const std::string allow_listed = scale_service(0), rate_limited = scale_service(1), capped = scale_service(2),
                    syn_authenticated = scale_service(3);
  ServiceSpec allow = service(allow_listed, 80, "tcp", 3);
  const std::string client_lan = fmt::format("{}/{}", topology::kGwClientV4, topology::kLanPrefixV4);
  allow.policy.access.allow = {
      must(Cidr::parse(fmt::format("{}/{}", ipv4_host(client_lan, 0), topology::kLanPrefixV4)), "cidr")};
  apply(bench, allow);
  ServiceSpec limit = service(rate_limited, 80, "tcp", 3);
  // Far above what one CPU sends: every packet conforms.
  limit.policy.rate_limit = RateLimitSpec{1'000'000'000, 1'000'000, 0, 0, 32, 64};
  apply(bench, limit);
  ServiceSpec cap = service(capped, 80, "tcp", 3);
  cap.policy.new_connections = ConnectionLimitSpec{1'000'000'000, 1'000'000};
  apply(bench, cap);
  ServiceSpec syn_auth = service(syn_authenticated, 80, "tcp", 3);
  syn_auth.policy.syn_authentication = true;
  apply(bench, syn_auth);
  // The client proved itself (as by a challenge's RST).
  tg_source_key source{};
  source.family = TG_FAMILY_IPV4;
  inet_pton(AF_INET, kClient, &source.addr[0]);
  const uint64_t now = monotonic_ns();
  if (bpf_map_update_elem(bench.maps().verified_sources.fd(), &source, &now, BPF_ANY) != 0)
    fail("prove the client's source");

  std::vector<Scenario> scenarios;
  auto with = [&](Scenario scenario, const char* what) {
    scenario.what = what;
    scenarios.push_back(std::move(scenario));
  };
  with(established(bench, "tcp_established_allow_list", false, 6, 40000, allow_listed),
       "tcp_established to a service with an allow list that admits the client (LPM lookup)");
  with(established(bench, "tcp_established_rate_limit", false, 6, 40000, rate_limited),
       "tcp_established to a service with a per-source rate limit the client stays under (bucket)");
  with(new_flows(bench, "tcp_new_flow_connection_limit", capped),
       "tcp_new_flow to a service with a cap on new connections it stays under (bucket)");
  with(new_flows(bench, "tcp_new_flow_syn_auth", syn_authenticated),
       "tcp_new_flow to a service with SYN authentication, from a proven source");
  return scenarios;
}

// Each scheduler, Maglev too, on a service of its own alike but for it
// (after those of feature_scenarios): its new-flow and established cost,
// side by side in the same rounds.
std::vector<Scenario> scheduler_scenarios(Bench& bench) {
  std::vector<Scenario> scenarios;
  size_t number = 4;
  for (Scheduler scheduler : kSchedulers) {
    const std::string address = scale_service(number++);
    ServiceSpec spec = service(address, 80, "tcp", 3);
    spec.scheduler = scheduler;
    apply(bench, spec);
    std::string suffix(scheduler_name(scheduler));
    std::replace(suffix.begin(), suffix.end(), '-', '_');
    Scenario tracked = established(bench, "tcp_established_" + suffix, false, 6, 40000, address);
    tracked.what = fmt::format("tcp_established to a service of the {} scheduler", scheduler_name(scheduler));
    scenarios.push_back(std::move(tracked));
    Scenario fresh = new_flows(bench, "tcp_new_flow_" + suffix, address);
    fresh.what = fmt::format("tcp_new_flow to a service of the {} scheduler", scheduler_name(scheduler));
    scenarios.push_back(std::move(fresh));
  }
  return scenarios;
}

}  // namespace

json cost(const TestNetwork& network, int rounds, size_t iterations) {
  std::fprintf(stderr, "cost per packet (BPF_PROG_TEST_RUN, repeat=1, %d rounds of %zu):\n", rounds, iterations);
  Bench bench(network, LoadOptions{});
  apply(bench, service(kService, 80, "tcp", 3));
  apply(bench, service(kService, 53, "udp", 3));
  apply(bench, service(kService6, 80, "tcp", 3));
  ServiceSpec limited = service(kLimitedService, 80, "tcp", 3);
  limited.policy.rate_limit = RateLimitSpec{1, 1, 0, 0, 32, 64};
  apply(bench, limited);
  ServiceSpec denied = service(kDeniedService, 80, "tcp", 3);
  // The client's LAN.
  const std::string client_lan = fmt::format("{}/{}", topology::kGwClientV4, topology::kLanPrefixV4);
  denied.policy.access.deny = {
      must(Cidr::parse(fmt::format("{}/{}", ipv4_host(client_lan, 0), topology::kLanPrefixV4)), "cidr")};
  apply(bench, denied);

  std::vector<Scenario> scenarios;
  scenarios.push_back(established(bench, "tcp_established", false, 6, 40000));
  scenarios.push_back(new_flows(bench, "tcp_new_flow"));
  scenarios.push_back(handshake_acks(bench, "tcp_handshake_ack", false));
  scenarios.push_back(handshake_acks(bench, "tcp_syn_and_ack", true));
  scenarios.push_back(established(bench, "udp_established", false, 17, 40000));
  scenarios.push_back(established(bench, "tcp6_established", true, 6, 40000));
  scenarios.push_back(not_a_service());
  scenarios.push_back(dropped(bench, "rate_limited_drop",
                              "IPv4 TCP packet over its source's rate: service lookup, bucket, XDP_DROP, counted",
                              kLimitedService, TG_DROP_RATE_LIMITED, true));
  scenarios.push_back(dropped(bench, "acl_deny", "IPv4 TCP packet from a denied prefix: LPM lookup, XDP_DROP, counted",
                              kDeniedService, TG_DROP_DENIED, false));
  scenarios.push_back(tc_reply(bench));
  for (auto& scenario : feature_scenarios(bench)) scenarios.push_back(std::move(scenario));
  for (auto& scenario : scheduler_scenarios(bench)) scenarios.push_back(std::move(scenario));
  json results = json::array();
  for (const auto& scenario : scenarios) results.push_back(measure(bench, scenario, rounds, iterations));
  return results;
}

json scale(const TestNetwork& network, int rounds, size_t iterations) {
  std::fprintf(stderr, "cost against scale:\n");
  json points = json::array();
  for (size_t services : {1, 100, 10000}) {
    Bench bench(network, LoadOptions{});
    apply(bench, service(kService, 80, "tcp", 3));
    // The others: small tables (M = 251) keep 10,000 of them in memory.
    for (size_t i = 1; i < services; ++i) {
      apply(bench, service(scale_service(i), 80, "tcp", 1, 251));
    }
    points.push_back(scale_point(bench, "services", services, rounds, iterations));
  }
  for (size_t count : {10, 1000}) {
    Bench bench(network, LoadOptions{});
    apply(bench, service(kService, 80, "tcp", count));
    points.push_back(scale_point(bench, "backends", count, rounds, iterations));
  }
  for (size_t flows : {1000, 1000000}) {
    LoadOptions options;
    options.flow_capacity = 2 * 1024 * 1024;
    Bench bench(network, options);
    apply(bench, service(kService, 80, "tcp", 3));
    fill_flows(bench, flows);
    points.push_back(scale_point(bench, "flows", flows, rounds, iterations));
  }
  {
    // Both tables full: the established flow lives in the overflow, and
    // every new flow's insert into it evicts one (refilled before each round).
    Bench bench(network, LoadOptions{});
    apply(bench, service(kService, 80, "tcp", 3));
    fill_flows(bench, TG_OVERFLOW_FLOWS_DEFAULT, true);
    fill_flows(bench, TG_FLOWS_DEFAULT);
    points.push_back(scale_point(bench, "flows, both tables full", TG_FLOWS_DEFAULT + TG_OVERFLOW_FLOWS_DEFAULT, rounds,
                                 iterations, [&bench] { fill_flows(bench, TG_OVERFLOW_FLOWS_DEFAULT, true); }));
  }
  return points;
}

}  // namespace tollgate::datapath_bench
