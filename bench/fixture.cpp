#include "fixture.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "bench.skel.h"
#include "map_keys.h"
#include "stats.h"

namespace tollgate::datapath_bench {

using namespace test;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "tollgate_bench_datapath: %s\n", what.c_str());
  std::exit(1);
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

namespace {

std::string bracket(const std::string& address) {
  return address.find(':') != std::string::npos ? "[" + address + "]" : address;
}

}  // namespace

ServiceAddress service_address(const std::string& address, uint16_t port, const char* protocol) {
  return must(ServiceAddress::parse(fmt::format("{}:{}/{}", bracket(address), port, protocol)), "service address");
}

// `count` backends: the four test backends, then further ports on each.
std::vector<BackendSpec> backends(size_t count, bool ipv6) {
  std::vector<BackendSpec> list;
  for (size_t i = 0; i < count; ++i) {
    const std::string address = ipv6 ? kBackends6[i % 4] : kBackends[i % 4];
    const auto port = static_cast<uint16_t>(8080 + i / 4);
    list.push_back({must(Endpoint::parse(fmt::format("{}:{}", bracket(address), port)), "backend"), 1});
  }
  return list;
}

ServiceSpec service(const std::string& address, uint16_t port, const char* protocol, size_t backend_count,
                    uint32_t maglev_size) {
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

Bench::Bench(const TestNetwork& network, LoadOptions options) : network_(network) {
  datapath_ = must(DataPath::load(options), "load the data path");
  dataplane_ = std::make_unique<Dataplane>(datapath_->maps());
  must(dataplane_->set_timeouts(FlowTimeouts{}), "timeouts");
  floors_ = bench__open_and_load();
  if (!floors_) fail("load the floor programs (bench.bpf.c)");
}

Bench::~Bench() { bench__destroy(floors_); }

Bench::Run Bench::run(int fd, bool tc, const Bytes& packet) {
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

int Bench::floor_fd(bool tc) const { return bpf_program__fd(tc ? floors_->progs.floor_tc : floors_->progs.floor_xdp); }

Bytes Bench::establish(const PacketSpec& first) {
  PacketSpec packet = first;
  Run opened = xdp(build_packet(packet));
  if (opened.verdict != XDP_REDIRECT) fail(fmt::format("first packet of {}: verdict {}", packet.dst, opened.verdict));
  if (packet.protocol == 6) packet.tcp_flags = kTcpAck;
  Run next = xdp(build_packet(packet));
  if (next.verdict != XDP_REDIRECT) fail("second packet not forwarded");
  tg_flow flow{};
  if (!flow_table(flow_key_of(packet), &flow)) fail("established flow is in no flow table");
  std::string why;
  if (destination_of(next.out, packet.ipv6).first < 0 || !checksums_valid(next.out, &why))
    fail("established flow: bad output frame " + why);
  return next.out;
}

const MapHandle* Bench::flow_table(const tg_flow_key& key, tg_flow* flow) {
  for (const MapHandle* table : {&maps().flows, &maps().overflow_flows})
    if (bpf_map_lookup_elem(table->fd(), &key, flow) == 0) return table;
  return nullptr;
}

uint64_t Bench::drops(int reason) { return must(read_drops(maps().drops), "drop counters")[reason]; }

void apply(Bench& bench, const ServiceSpec& spec) { must(bench.dataplane().apply_service(spec), "apply a service"); }

// Fills tg_flows with `flows` established flows from other sources to
// kService (a service of the bench), made from a real one.
void fill_flows(Bench& bench, size_t flows, bool overflow) {
  const MapHandle& table = overflow ? bench.maps().overflow_flows : bench.maps().flows;
  PacketSpec model = client_packet(false, 6, kService, 41001, kTcpSyn);
  bench.establish(model);
  tg_flow_key key = flow_key_of(model);
  tg_flow value{};
  const MapHandle* holder = bench.flow_table(key, &value);
  if (!holder) fail("model flow");
  bpf_map_delete_elem(holder->fd(), &key);
  std::vector<tg_flow_key> keys;
  std::vector<tg_flow> values(std::min<size_t>(flows, 100000), value);
  for (size_t i = 0; i < flows; i += values.size()) {
    keys.clear();
    for (size_t j = i; j < std::min(flows, i + values.size()); ++j) {
      tg_flow_key filler = key;
      // 198.19.x.y, the overflow's from 198.19.128.y
      filler.src_addr[0] = htonl((overflow ? 0xc6138000u : 0xc6130000u) | static_cast<uint32_t>(j / 50000));
      filler.src_port = htons(static_cast<uint16_t>(1024 + j % 50000));
      keys.push_back(filler);
    }
    auto count = static_cast<uint32_t>(keys.size());
    if (bpf_map_update_batch(table.fd(), keys.data(), values.data(), &count, nullptr) != 0)
      fail(fmt::format("filling {}: {}", table.name(), std::strerror(errno)));
  }
  // An LRU table evicts a little before it is full (per-CPU free lists).
  const size_t held = map_entries(table);
  if (held < (overflow ? flows - flows / 100 : flows))
    fail(fmt::format("{} holds {} of {} flows", table.name(), held, flows));
}

}  // namespace tollgate::datapath_bench
