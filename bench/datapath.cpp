// Data-path and control-plane figures, measured on the real programs and
// the real agent code in a private network namespace (tests/bpf/netns.h):
//
//   cost     nanoseconds per packet through BPF_PROG_TEST_RUN for each path
//            of the data path, next to a floor program (XDP_PASS, or TC_ACT_OK
//            for the reply path) measured in the same round;
//   scale    the same cost with 1 / 100 / 10,000 services, 10 / 1,000
//            backends and 1 thousand / 1 million tracked flows;
//   control  Maglev table build times (M = 65537), the time from an HTTP API
//            call that drains one backend of a service with 1,000 backends to
//            the data path steering by the new table, and the map entries
//            that call wrote;
//   memory   the kernel memory of every map at the default sizes.
//
// Every counted iteration is one BPF_PROG_TEST_RUN with repeat=1, so each
// sees the packet as built (a repeated run would see the packet the
// previous run rewrote); its verdict and its output are checked, and a
// round whose proof fails (a drop counter, a flow count) aborts the run.
// The figure per round is the sum of the kernel's own per-run durations
// over the iterations; rounds alternate program and floor.
//
//   build/tollgate_bench_datapath [--rounds 7] [--iterations 20000] [--only cost,scale,control,memory]
//
// Prints one JSON document on stdout (bench/run makes tables of it),
// progress on stderr. Root only.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "api.h"
#include "bench.skel.h"
#include "cli.h"
#include "controller.h"
#include "dataplane.h"
#include "http_server.h"
#include "loader.h"
#include "maglev.h"
#include "map_keys.h"
#include "netns.h"
#include "packet.h"
#include "stats.h"

using namespace tollgate;
using namespace tollgate::test;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// The addresses of the test network (tests/bpf/netns.h, tools/lab-topology).
constexpr const char* kService = topology::kServiceV4;
constexpr const char* kService6 = topology::kServiceV6;
constexpr const char* kLimitedService = topology::kOtherServicesV4[0];
constexpr const char* kDeniedService = topology::kOtherServicesV4[1];
constexpr const char* kNotAService = topology::kNotAServiceV4;
constexpr const char* kClient = topology::kBpfClientV4;
constexpr const char* kClient6 = topology::kBpfClientV6;
constexpr auto kBackends = topology::kBpfBackendsV4;
constexpr auto kBackends6 = topology::kBpfBackendsV6;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "tollgate_bench_datapath: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T must(Result<T> result, const char* what) {
  if (!result) fail(fmt::format("{}: {}", what, result.error().message));
  return std::move(*result);
}
void must(const Status& status, const char* what) {
  if (!status) fail(fmt::format("{}: {}", what, status.error().message));
}

json summary(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  const double median = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return {{"median", median}, {"min", values.front()}, {"max", values.back()}, {"runs", n}};
}

// The scale figures' service `number` (1, 2, ...): 250 from each /24 of
// the range in turn, hosts .1-.250.
std::string scale_service(size_t number) {
  return ipv4_host(topology::kScaleServicesV4, static_cast<uint32_t>(256 * (number / 250) + 1 + number % 250));
}

std::string bracket(const std::string& address) {
  return address.find(':') != std::string::npos ? "[" + address + "]" : address;
}

ServiceAddress service_address(const std::string& address, uint16_t port, const char* protocol) {
  return must(ServiceAddress::parse(fmt::format("{}:{}/{}", bracket(address), port, protocol)), "service address");
}

// `count` backends: the four test backends, then further ports on each.
std::vector<BackendSpec> backends(size_t count, bool ipv6 = false) {
  std::vector<BackendSpec> list;
  for (size_t i = 0; i < count; ++i) {
    const std::string address = ipv6 ? kBackends6[i % 4] : kBackends[i % 4];
    const auto port = static_cast<uint16_t>(8080 + i / 4);
    list.push_back({must(Endpoint::parse(fmt::format("{}:{}", bracket(address), port)), "backend"), 1});
  }
  return list;
}

ServiceSpec service(const std::string& address, uint16_t port, const char* protocol, size_t backend_count,
                    uint32_t maglev_size = TG_MAGLEV_DEFAULT_SIZE) {
  return {service_address(address, port, protocol), maglev_size,
          backends(backend_count, address.find(':') != std::string::npos)};
}

PacketSpec client_packet(bool ipv6, uint8_t protocol, const std::string& destination, uint16_t source_port,
                         uint8_t flags) {
  PacketSpec spec;
  spec.ipv6 = ipv6;
  spec.src = ipv6 ? kClient6 : kClient;
  spec.dst = destination;
  spec.protocol = protocol;
  spec.src_port = source_port;
  spec.dst_port = protocol == 17 ? 53 : 80;
  spec.tcp_flags = flags;
  spec.payload = protocol == 17 ? Bytes(18, 'u') : Bytes{};
  return spec;
}

// Which test backend address a frame is sent to (-1: none), and its port.
std::pair<int, uint16_t> destination_of(const Bytes& frame, bool ipv6) {
  const size_t offset = ipv6 ? 14 + 24 : 14 + 16;
  const size_t length = ipv6 ? 16 : 4;
  const size_t ports = ipv6 ? 14 + 40 : 14 + 20;
  if (frame.size() < ports + 4) return {-1, 0};
  for (int i = 0; i < 4; ++i) {
    uint8_t address[16];
    inet_pton(ipv6 ? AF_INET6 : AF_INET, ipv6 ? kBackends6[i] : kBackends[i], address);
    if (std::equal(address, address + length, frame.begin() + static_cast<long>(offset)))
      return {i, static_cast<uint16_t>(frame[ports + 2] << 8 | frame[ports + 3])};
  }
  return {-1, 0};
}

uint64_t monotonic_ns() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(now.tv_nsec);
}

// What the kernel says a map costs (fdinfo's memlock) and holds.
std::pair<uint64_t, uint64_t> map_memory(int fd) {
  std::ifstream info(fmt::format("/proc/self/fdinfo/{}", fd));
  uint64_t memlock = 0, max_entries = 0;
  for (std::string line; std::getline(info, line);) {
    if (line.rfind("memlock:", 0) == 0) memlock = std::stoull(line.substr(8));
    if (line.rfind("max_entries:", 0) == 0) max_entries = std::stoull(line.substr(12));
  }
  return {memlock, max_entries};
}

// One loaded data path and its Dataplane, plus the floor programs.
class Bench {
 public:
  Bench(const TestNetwork& network, LoadOptions options) : network_(network) {
    datapath_ = must(DataPath::load(options), "load the data path");
    dataplane_ = std::make_unique<Dataplane>(datapath_->maps());
    must(dataplane_->set_timeouts(FlowTimeouts{}), "timeouts");
    floors_ = bench__open_and_load();
    if (!floors_) fail("load the floor programs (bench.bpf.c)");
  }
  ~Bench() { bench__destroy(floors_); }

  const MapFds& maps() const { return datapath_->maps(); }
  Dataplane& dataplane() { return *dataplane_; }
  DataPath& datapath() { return *datapath_; }

  struct Run {
    int verdict;
    uint32_t duration_ns;
    Bytes out;
  };

  Run run(int fd, bool tc, const Bytes& packet) {
    Run result{-1, 0, Bytes(packet.size() + 256)};
    xdp_md xdp{};
    __sk_buff skb{};
    xdp.data_end = static_cast<uint32_t>(packet.size());
    xdp.ingress_ifindex = static_cast<uint32_t>(network_.client_ifindex);
    skb.ifindex = static_cast<uint32_t>(network_.backend_ifindex);
    LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = packet.data(), .data_out = result.out.data(),
                .data_size_in = static_cast<uint32_t>(packet.size()),
                .data_size_out = static_cast<uint32_t>(result.out.size()),
                .ctx_in = tc ? static_cast<void*>(&skb) : static_cast<void*>(&xdp),
                .ctx_size_in = static_cast<uint32_t>(tc ? sizeof(skb) : sizeof(xdp)), .repeat = 1);
    if (bpf_prog_test_run_opts(fd, &options) != 0) fail(fmt::format("BPF_PROG_TEST_RUN: {}", std::strerror(errno)));
    result.verdict = static_cast<int>(options.retval);
    result.duration_ns = options.duration;
    result.out.resize(options.data_size_out);
    return result;
  }
  Run xdp(const Bytes& packet) { return run(datapath_->xdp_program_fd(), false, packet); }
  Run tc(const Bytes& packet) { return run(datapath_->tc_program_fd(), true, packet); }
  int floor_fd(bool tc) const { return bpf_program__fd(tc ? floors_->progs.floor_tc : floors_->progs.floor_xdp); }

  // A flow made established (SYN then ACK, or two datagrams) and now in
  // tg_flows; returns the frame the data path makes of its next packet.
  Bytes establish(const PacketSpec& first) {
    PacketSpec packet = first;
    Run opened = xdp(build_packet(packet));
    if (opened.verdict != XDP_REDIRECT) fail(fmt::format("first packet of {}: verdict {}", packet.dst, opened.verdict));
    if (packet.protocol == 6) packet.tcp_flags = kTcpAck;
    Run next = xdp(build_packet(packet));
    if (next.verdict != XDP_REDIRECT) fail("second packet not forwarded");
    tg_flow_key key = flow_key(packet);
    tg_flow flow{};
    if (bpf_map_lookup_elem(maps().flows, &key, &flow) != 0) fail("established flow is not in tg_flows");
    std::string why;
    if (destination_of(next.out, packet.ipv6).first < 0 || !checksums_valid(next.out, &why))
      fail("established flow: bad output frame " + why);
    return next.out;
  }

  static tg_flow_key flow_key(const PacketSpec& packet) {
    tg_flow_key key{};
    inet_pton(packet.ipv6 ? AF_INET6 : AF_INET, packet.src.c_str(), key.src_addr);
    inet_pton(packet.ipv6 ? AF_INET6 : AF_INET, packet.dst.c_str(), key.dst_addr);
    key.src_port = htons(packet.src_port);
    key.dst_port = htons(packet.dst_port);
    key.protocol = packet.protocol;
    key.family = packet.ipv6 ? TG_FAMILY_IPV6 : TG_FAMILY_IPV4;
    return key;
  }

  uint64_t drops(int reason) { return must(read_drops(maps().drops), "drop counters")[reason]; }

 private:
  const TestNetwork& network_;
  std::unique_ptr<DataPath> datapath_;
  std::unique_ptr<Dataplane> dataplane_;
  bench* floors_ = nullptr;
};

// One path through a program: the packet of each iteration, the verdict
// every iteration must return, a check of each output and a proof per
// round (both return what went wrong, or nothing).
struct Scenario {
  std::string name;
  std::string what;
  bool tc = false;
  int verdict = XDP_REDIRECT;
  std::function<Bytes(size_t)> packet;
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

Scenario established(Bench& bench, const std::string& name, bool ipv6, uint8_t protocol, uint16_t port) {
  auto reference = std::make_shared<Bytes>();
  PacketSpec spec = client_packet(ipv6, protocol, ipv6 ? kService6 : kService, port, kTcpSyn);
  PacketSpec next = spec;
  next.tcp_flags = kTcpAck;
  const Bytes packet = build_packet(next);
  Scenario scenario;
  scenario.name = name;
  scenario.what = fmt::format("{} {} packet of a tracked flow (conntrack hit), NAT, forward", ipv6 ? "IPv6" : "IPv4",
                              protocol == 6 ? "TCP" : "UDP");
  scenario.packet = [packet](size_t) { return packet; };
  scenario.before_round = [&bench, spec, reference] {
    if (reference->empty()) *reference = bench.establish(spec);
  };
  scenario.check = [reference](const Bytes&, const Bytes& out) { return same_frame(*reference, out); };
  return scenario;
}

// SYNs of distinct flows (one source port each): every one a new flow,
// steered by the Maglev table. Proof: each round adds `iterations` flows
// to tg_new_flows; they are removed after it (untimed).
Scenario new_flows(Bench& bench, const std::string& name) {
  Scenario scenario;
  scenario.name = name;
  scenario.what = "IPv4 TCP SYN of a new flow: Maglev lookup, one-packet flow recorded, NAT, forward";
  scenario.packet = [](size_t i) {
    return build_packet(client_packet(false, 6, kService, static_cast<uint16_t>(1024 + i % 60000), kTcpSyn));
  };
  scenario.check = [](const Bytes&, const Bytes& out) {
    return destination_of(out, false).first >= 0 ? std::string() : std::string("not sent to a backend");
  };
  auto before = std::make_shared<size_t>(0);
  scenario.before_round = [&bench, before] { *before = map_entries(bench.maps().new_flows); };
  scenario.after_round = [&bench, before](size_t iterations) {
    const size_t added = map_entries(bench.maps().new_flows) - *before;
    clear_map(bench.maps().new_flows);
    clear_map(bench.maps().new_reverse);
    return added == iterations ? std::string() : fmt::format("{} new flows recorded for {} SYNs", added, iterations);
  };
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
      const int fd = bench.maps().source_buckets;
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
  scenario.what = "IPv4 TCP packet to an address that is no service: parse, one lookup, XDP_PASS";
  scenario.verdict = XDP_PASS;
  const Bytes packet = build_packet(client_packet(false, 6, kNotAService, 40000, kTcpAck));
  scenario.packet = [packet](size_t) { return packet; };
  scenario.check = [](const Bytes& in, const Bytes& out) { return same_frame(in, out); };
  return scenario;
}

// A backend's reply to an established flow: the TC program finds the
// reverse entry, restores the service address and port, forwards.
Scenario tc_reply(Bench& bench) {
  auto reply = std::make_shared<Bytes>();
  auto reference = std::make_shared<Bytes>();
  Scenario scenario;
  scenario.name = "tc_reply";
  scenario.what = "IPv4 TCP reply of a tracked flow (TC): reverse lookup, source NAT back, forward";
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

void apply(Bench& bench, const ServiceSpec& spec) { must(bench.dataplane().apply_service(spec), "apply a service"); }

// --- sections ---------------------------------------------------------------

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
  scenarios.push_back(established(bench, "udp_established", false, 17, 40000));
  scenarios.push_back(established(bench, "tcp6_established", true, 6, 40000));
  scenarios.push_back(not_a_service());
  scenarios.push_back(dropped(bench, "rate_limited_drop",
                              "IPv4 TCP packet over its source's rate: service lookup, bucket, XDP_DROP, counted",
                              kLimitedService, TG_DROP_RATE_LIMITED, true));
  scenarios.push_back(dropped(bench, "acl_deny", "IPv4 TCP packet from a denied prefix: LPM lookup, XDP_DROP, counted",
                              kDeniedService, TG_DROP_DENIED, false));
  scenarios.push_back(tc_reply(bench));
  json results = json::array();
  for (const auto& scenario : scenarios) results.push_back(measure(bench, scenario, rounds, iterations));
  return results;
}

// Established and new-flow cost on a data path holding the given state.
json scale_point(Bench& bench, const std::string& dimension, size_t size, int rounds, size_t iterations) {
  std::fprintf(stderr, " %s = %zu:\n", dimension.c_str(), size);
  json point = {{"dimension", dimension}, {"size", size}};
  point["established"] = measure(bench, established(bench, "tcp_established", false, 6, 41000), rounds, iterations);
  point["new_flow"] = measure(bench, new_flows(bench, "tcp_new_flow"), rounds, iterations);
  return point;
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
    // Fill tg_flows with flows from other sources to the same service.
    PacketSpec model = client_packet(false, 6, kService, 41001, kTcpSyn);
    bench.establish(model);
    tg_flow_key key = Bench::flow_key(model);
    tg_flow value{};
    if (bpf_map_lookup_elem(bench.maps().flows, &key, &value) != 0) fail("model flow");
    bpf_map_delete_elem(bench.maps().flows, &key);
    std::vector<tg_flow_key> keys;
    std::vector<tg_flow> values(std::min<size_t>(flows, 100000), value);
    for (size_t i = 0; i < flows; i += values.size()) {
      keys.clear();
      for (size_t j = i; j < std::min(flows, i + values.size()); ++j) {
        tg_flow_key filler = key;
        filler.src_addr[0] = htonl(0xc6130000u | static_cast<uint32_t>(j / 50000));  // 198.19.x.y
        filler.src_port = htons(static_cast<uint16_t>(1024 + j % 50000));
        keys.push_back(filler);
      }
      auto count = static_cast<uint32_t>(keys.size());
      if (bpf_map_update_batch(bench.maps().flows, keys.data(), values.data(), &count, nullptr) != 0)
        fail(fmt::format("filling tg_flows: {}", std::strerror(errno)));
    }
    const size_t held = map_entries(bench.maps().flows);
    if (held < flows) fail(fmt::format("tg_flows holds {} of {} flows", held, flows));
    points.push_back(scale_point(bench, "flows", flows, rounds, iterations));
  }
  return points;
}

json maglev_builds(int rounds) {
  json builds = json::array();
  for (size_t count : {10, 100, 1000}) {
    std::vector<MaglevBackend> list;
    for (const auto& spec : backends(count)) {
      const auto& endpoint = spec.endpoint;
      list.push_back({maglev_key(endpoint.address.bytes.data(), 4, endpoint.port), 1});
    }
    std::vector<double> ms;
    for (int round = 0; round < rounds; ++round) {
      const auto started = Clock::now();
      auto table = build_maglev_table(list, TG_MAGLEV_DEFAULT_SIZE);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - started).count());
      if (table.size() != TG_MAGLEV_DEFAULT_SIZE) fail("maglev table size");
    }
    builds.push_back({{"backends", count}, {"size", TG_MAGLEV_DEFAULT_SIZE}, {"ms", summary(ms)}});
    std::fprintf(stderr, "  maglev build, %4zu backends, M=%u: %.2f ms\n", count, TG_MAGLEV_DEFAULT_SIZE,
                 builds.back()["ms"]["median"].get<double>());
  }
  return builds;
}

// Drain one backend of a service with 1,000 backends, beside 10,000 other
// services, through the HTTP API (the agent's own server and controller,
// in this process, on a Unix socket) and time until a SYN that went to it
// is steered elsewhere. Each
// round drains another backend; the first change (not counted) makes the
// standby table. Also: how many table slots a drain changes at all.
constexpr size_t kOtherServices = 10000;

json api_to_datapath(const TestNetwork& network, int rounds) {
  Bench bench(network, LoadOptions{});
  char pattern[] = "/tmp/tollgate-bench-XXXXXX";
  if (!mkdtemp(pattern)) fail("mkdtemp");
  const std::string dir = pattern;
  auto audit = must(AuditLog::open(dir + "/audit.log"), "audit log");
  Controller controller(bench.dataplane(), bench.maps(), *audit, dir + "/state", AgentState{});
  // The measured service and 10,000 others (small tables, M = 251), applied
  // whole as a config file is, through the controller.
  Config config;
  config.services.push_back(service(kService, 80, "tcp", 1000));
  for (size_t i = 1; i <= kOtherServices; ++i) config.services.push_back(service(scale_service(i), 80, "tcp", 1, 251));
  const auto apply_started = Clock::now();
  must(controller.apply(config, {{"source", "bench"}}), "apply 10,001 services");
  const double apply_seconds = std::chrono::duration<double>(Clock::now() - apply_started).count();
  std::fprintf(stderr, "  %zu services applied whole through the controller: %.2f s\n", config.services.size(),
               apply_seconds);
  Api api(controller, *audit, AccessPolicy{}, AgentInfo{});
  auto server =
      must(HttpServer::listen(
               dir + "/tollgate.sock", {0600}, [&api](const HttpRequest& request) { return api.handle(request); },
               [](const Caller&, const HttpResponse&) {}),
           "API socket");
  std::thread serving([&server] { server->serve(); });
  auto call = cli::unix_socket_transport(dir + "/tollgate.sock");

  // Where a probe SYN from `port` goes now.
  auto probe = [&](uint16_t port) {
    clear_map(bench.maps().new_flows);
    clear_map(bench.maps().new_reverse);
    Bench::Run run = bench.xdp(build_packet(client_packet(false, 6, kService, port, kTcpSyn)));
    if (run.verdict != XDP_REDIRECT) fail("probe not forwarded");
    return destination_of(run.out, false);
  };

  std::vector<double> total_ms, http_ms, switch_ms, agent_ms, table_entries, backend_entries;
  for (int round = 0; round <= rounds; ++round) {
    const auto port = static_cast<uint16_t>(20000 + round);
    const auto target = probe(port);
    const std::string path =
        fmt::format("/v1/services/{}%3A80%2Ftcp/backends/{}:{}", kService, kBackends[target.first], target.second);
    const auto started = Clock::now();
    auto reply = call("PATCH", path, R"({"state": "draining"})");
    const auto answered = Clock::now();
    if (!reply || reply->status != 200) fail("PATCH " + path + ": " + (reply ? reply->body : reply.error().message));
    // Bounded: the write is done when the reply comes; this proves it.
    for (int poll = 0; probe(port) == target; ++poll)
      if (poll > 1000) fail("the data path never used the new table");
    const auto steered = Clock::now();
    if (round == 0) continue;  // made the standby table
    total_ms.push_back(std::chrono::duration<double, std::milli>(steered - started).count());
    http_ms.push_back(std::chrono::duration<double, std::milli>(answered - started).count());
    // The table switch is the kernel's RCU wait; the rest is the agent's.
    switch_ms.push_back(std::chrono::duration<double, std::milli>(bench.dataplane().last_write().table_switch).count());
    agent_ms.push_back(total_ms.back() - switch_ms.back());
    table_entries.push_back(static_cast<double>(bench.dataplane().last_write().table_entries));
    backend_entries.push_back(static_cast<double>(bench.dataplane().last_write().backend_entries));
  }
  server->stop();
  serving.join();
  std::filesystem::remove_all(dir);

  // Slots that one drain moves, from the Maglev tables themselves.
  std::vector<MaglevBackend> list;
  for (const auto& spec : backends(1000))
    list.push_back({maglev_key(spec.endpoint.address.bytes.data(), 4, spec.endpoint.port), 1});
  const auto before = build_maglev_table(list, TG_MAGLEV_DEFAULT_SIZE);
  list[0].weight = 0;
  const auto after = build_maglev_table(list, TG_MAGLEV_DEFAULT_SIZE);
  size_t moved = 0;
  for (size_t i = 0; i < before.size(); ++i) moved += before[i] != after[i];

  json result = {{"backends", 1000},
                 {"other_services", kOtherServices},
                 {"config_apply_seconds", apply_seconds},
                 {"maglev_size", TG_MAGLEV_DEFAULT_SIZE},
                 {"changes", rounds},
                 {"call_to_datapath_ms", summary(total_ms)},
                 {"http_reply_ms", summary(http_ms)},
                 {"table_switch_ms", summary(switch_ms)},
                 {"without_switch_ms", summary(agent_ms)},
                 {"table_entries_written", summary(table_entries)},
                 {"backend_entries_written", summary(backend_entries)},
                 {"table_slots_one_drain_moves", moved}};
  std::fprintf(stderr,
               "  drain 1 of 1,000 backends via the API -> data path: %.2f ms: %.2f ms and one table switch "
               "(the kernel's RCU wait) of %.2f ms; wrote %g table entries "
               "(a drain moves %zu slots; the standby table is two changes behind) and %g backend entries\n",
               result["call_to_datapath_ms"]["median"].get<double>(),
               result["without_switch_ms"]["median"].get<double>(), result["table_switch_ms"]["median"].get<double>(),
               result["table_entries_written"]["median"].get<double>(), moved,
               result["backend_entries_written"]["median"].get<double>());
  return result;
}

json memory(const TestNetwork& network) {
  Bench bench(network, LoadOptions{});
  const MapFds& m = bench.maps();
  const std::pair<const char*, int> maps[] = {{"tg_config", m.config},
                                              {"tg_services", m.services},
                                              {"tg_vip_addresses", m.vip_addresses},
                                              {"tg_backends", m.backends},
                                              {"tg_maglev (outer)", m.maglev},
                                              {"tg_flows", m.flows},
                                              {"tg_reverse_flows", m.reverse_flows},
                                              {"tg_service_stats", m.service_stats},
                                              {"tg_backend_stats", m.backend_stats},
                                              {"tg_backend_health", m.backend_health},
                                              {"tg_backend_last_handshake", m.backend_last_handshake},
                                              {"tg_fib_cache", m.fib_cache},
                                              {"tg_drops", m.drops},
                                              {"tg_new_flows", m.new_flows},
                                              {"tg_new_reverse", m.new_reverse},
                                              {"tg_service_policy", m.service_policy},
                                              {"tg_acl_allow", m.acl_allow},
                                              {"tg_acl_deny", m.acl_deny},
                                              {"tg_source_buckets", m.source_buckets},
                                              {"tg_conn_buckets", m.conn_buckets},
                                              {"tg_events", m.events},
                                              {"tg_event_aggregates", m.event_aggregates},
                                              {"tg_event_stats", m.event_stats}};
  json list = json::array();
  uint64_t total = 0;
  for (const auto& [name, fd] : maps) {
    const auto [bytes, entries] = map_memory(fd);
    total += bytes;
    list.push_back({{"map", name}, {"max_entries", entries}, {"bytes", bytes}});
  }
  // One service's Maglev table (an inner map of tg_maglev).
  apply(bench, service(kService, 80, "tcp", 3));
  const auto id = bench.dataplane().service_id(service_address(kService, 80, "tcp"));
  if (!id) fail("service id");
  uint32_t inner_id = 0;
  if (bpf_map_lookup_elem(m.maglev, &*id, &inner_id) != 0) fail("maglev inner map id");
  const int inner = bpf_map_get_fd_by_id(inner_id);
  if (inner < 0) fail("maglev inner map fd");
  const auto [table_bytes, table_entries] = map_memory(inner);
  close(inner);
  std::fprintf(stderr, "  maps at default sizes: %.1f MiB; one service's Maglev table (M=%llu): %.1f KiB\n",
               static_cast<double>(total) / 1048576.0, static_cast<unsigned long long>(table_entries),
               static_cast<double>(table_bytes) / 1024.0);
  return {{"maps", list},
          {"total_bytes", total},
          {"maglev_table", {{"max_entries", table_entries}, {"bytes", table_bytes}}}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tollgate data-path and control-plane benchmarks (root; prints JSON)"};
  int rounds = 7;
  size_t iterations = 20000;
  std::vector<std::string> only{"cost", "scale", "control", "memory"};
  app.add_option("--rounds", rounds, "rounds per figure (median, min, max)")->check(CLI::Range(1, 50));
  app.add_option("--iterations", iterations, "BPF_PROG_TEST_RUN calls per round")->check(CLI::Range(100, 60000));
  app.add_option("--only", only, "sections: cost, scale, control, memory")
      ->delimiter(',')
      ->check(CLI::IsMember({"cost", "scale", "control", "memory"}));
  CLI11_PARSE(app, argc, argv);
  if (geteuid() != 0) fail("run as root: it loads BPF programs and makes a network namespace");
  libbpf_set_print([](libbpf_print_level level, const char* format, va_list args) {
    return level == LIBBPF_WARN ? std::vfprintf(stderr, format, args) : 0;
  });

  TestNetwork network;
  if (auto failure = network.create(); !failure.empty()) fail(failure);
  auto wanted = [&](const char* section) { return std::find(only.begin(), only.end(), section) != only.end(); };
  json out = {{"rounds", rounds}, {"iterations", iterations}};
  if (wanted("cost")) out["cost"] = cost(network, rounds, iterations);
  if (wanted("scale")) out["scale"] = scale(network, rounds, iterations);
  if (wanted("control")) {
    std::fprintf(stderr, "control plane:\n");
    out["maglev_build"] = maglev_builds(rounds);
    out["api_change"] = api_to_datapath(network, rounds);
  }
  if (wanted("memory")) out["memory"] = memory(network);
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
