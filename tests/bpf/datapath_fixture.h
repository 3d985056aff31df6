// The data path loaded through the real loader and configured through the
// real Dataplane, in a private network namespace, with helpers to run its
// programs through BPF_PROG_TEST_RUN.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sched.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>

#include "dataplane.h"
#include "loader.h"
#include "map_keys.h"
#include "netns.h"
#include "packet.h"
#include "stats.h"

namespace tollgate::test {

struct RunResult {
  int verdict = -1;
  Bytes data;
};

inline const char* verdict_name(int verdict) {
  switch (verdict) {
    case XDP_ABORTED: return "XDP_ABORTED";
    case XDP_DROP: return "XDP_DROP";
    case XDP_PASS: return "XDP_PASS";
    case XDP_TX: return "XDP_TX";
    case XDP_REDIRECT: return "XDP_REDIRECT";
    default: return "?";
  }
}

inline uint16_t get16(const Bytes& bytes, size_t offset) {
  return static_cast<uint16_t>(bytes[offset] << 8 | bytes[offset + 1]);
}
inline void put16(Bytes& bytes, size_t offset, uint16_t value) {
  bytes[offset] = static_cast<uint8_t>(value >> 8);
  bytes[offset + 1] = static_cast<uint8_t>(value);
}

// Per family: the service, its backends and a client (netns.h).
struct Addresses {
  bool ipv6;
  const char* service;
  const char* other_address;  // not a service address
  const char* client;
  std::array<const char*, 4> backends;  // on the backend side, hosts 11..14
  const char* client_side_host;         // on the client side, host 21
};
inline const Addresses kIpv4{false,
                             topology::kServiceV4,
                             topology::kNotAServiceV4,
                             topology::kBpfClientV4,
                             topology::kBpfBackendsV4,
                             topology::kBpfClientSideHostV4};
inline const Addresses kIpv6{true,
                             topology::kServiceV6,
                             topology::kNotAServiceV6,
                             topology::kBpfClientV6,
                             topology::kBpfBackendsV6,
                             topology::kBpfClientSideHostV6};

inline std::string bracket(const Addresses& family, const char* address) {
  return family.ipv6 ? fmt::format("[{}]", address) : std::string(address);
}

// Runs the calling thread on CPU 0 only, for the tests of per-CPU caches;
// the guard it returns gives the thread every CPU back, then runs `undo`.
inline std::shared_ptr<void> on_first_cpu(std::function<void()> undo) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  EXPECT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  return std::shared_ptr<void>(nullptr, [undo = std::move(undo)](void*) {
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) CPU_SET(cpu, &all);
    sched_setaffinity(0, sizeof(all), &all);
    undo();
  });
}

// Puts every map of a loaded data path back as the load made it: hash
// maps, tries and outer maps of maps empty, arrays zeroed, the ring buffer
// drained (the programs keep no other state).
Status reset_maps(const DataPathMaps& maps);

// The tests of one process share one load of the data path (a load is
// most of a test's time: 1.5 s here, 15 s under TCG), its maps reset
// between tests; the test network is made anew for each.
class DataPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: loads BPF programs and makes a network namespace";
    std::string failure = network_.create();
    ASSERT_TRUE(failure.empty()) << failure;
    auto loaded = load_datapath();
    ASSERT_TRUE(loaded) << loaded.error().message;
    datapath_ = *loaded;
    dataplane_ = std::make_unique<Dataplane>(datapath_->maps());
    ASSERT_TRUE(dataplane_->set_timeouts(FlowTimeouts{}));
  }

  // What the data path is loaded with (a test of full tables makes them small).
  virtual LoadOptions load_options() const { return LoadOptions{}; }

  // With the default options, the one data path of this test process, its
  // maps emptied as a fresh load has them (reset_maps); else one of this
  // test's own.
  Result<DataPath*> load_datapath();

  // Runs the TC reply program on `packet` arriving on the backend side.
  // `gso_size`: the packet as a GSO one of segments that size.
  RunResult run_tc(const Bytes& packet, uint32_t gso_size = 0) {
    __sk_buff context{};
    context.ifindex = static_cast<uint32_t>(network_.backend_ifindex);
    context.gso_size = gso_size;
    context.gso_segs = gso_size ? 2 : 0;
    return test_run(datapath_->tc_program_fd(), packet, &context, sizeof(context));
  }

  // Runs the XDP program on `packet` arriving on the client side.
  RunResult run(const Bytes& packet, int ingress_ifindex = 0) {
    xdp_md context{};
    context.data_end = static_cast<uint32_t>(packet.size());
    context.ingress_ifindex = static_cast<uint32_t>(ingress_ifindex ? ingress_ifindex : network_.client_ifindex);
    return test_run(datapath_->xdp_program_fd(), packet, &context, sizeof(context));
  }

  // One BPF_PROG_TEST_RUN (repeat 1: every run sees the packet as given).
  RunResult test_run(int program_fd, const Bytes& packet, void* context, size_t context_size) {
    RunResult result;
    result.data.resize(packet.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = packet.data(), .data_out = result.data.data(),
                .data_size_in = static_cast<uint32_t>(packet.size()),
                .data_size_out = static_cast<uint32_t>(result.data.size()), .ctx_in = context,
                .ctx_size_in = static_cast<uint32_t>(context_size), .repeat = 1);
    int err = bpf_prog_test_run_opts(program_fd, &options);
    EXPECT_EQ(err, 0) << "BPF_PROG_TEST_RUN: " << std::strerror(errno);
    result.verdict = static_cast<int>(options.retval);
    result.data.resize(options.data_size_out);
    return result;
  }

  ServiceAddress service_address(const Addresses& family, uint8_t protocol, uint16_t port = 80) {
    auto address = ServiceAddress::parse(
        fmt::format("{}:{}/{}", bracket(family, family.service), port, protocol == 6 ? "tcp" : "udp"));
    EXPECT_TRUE(address);
    return *address;
  }

  Endpoint backend_endpoint(const Addresses& family, int number, uint16_t port = 8080) {
    auto endpoint = Endpoint::parse(fmt::format("{}:{}", bracket(family, family.backends[number]), port));
    EXPECT_TRUE(endpoint);
    return *endpoint;
  }

  // A service with backends 0..count-1 of `family`, weights from `weights`.
  ServiceSpec service_spec(const Addresses& family, uint8_t protocol, size_t count,
                           std::vector<uint32_t> weights = {}) {
    ServiceSpec spec{service_address(family, protocol), TG_MAGLEV_DEFAULT_SIZE, {}};
    for (size_t i = 0; i < count; ++i)
      spec.backends.push_back({backend_endpoint(family, static_cast<int>(i)), i < weights.size() ? weights[i] : 1});
    return spec;
  }

  void apply(const ServiceSpec& spec) {
    auto status = dataplane_->apply_service(spec);
    ASSERT_TRUE(status) << status.error().message;
  }

  PacketSpec client_packet(const Addresses& family, uint8_t protocol, uint16_t src_port = 40000) {
    PacketSpec spec;
    spec.ipv6 = family.ipv6;
    spec.src = family.client;
    spec.dst = family.service;
    spec.protocol = protocol;
    spec.src_port = src_port;
    spec.dst_port = 80;
    spec.tcp_flags = kTcpSyn;
    spec.payload = protocol == 17 ? Bytes{'p', 'i', 'n', 'g'} : Bytes{};
    return spec;
  }

  // Which backend (number into family.backends) the output frame goes to.
  int backend_of(const Addresses& family, const Bytes& frame) {
    const size_t offset = family.ipv6 ? 14 + 24 : 14 + 16;
    const size_t length = family.ipv6 ? 16 : 4;
    if (frame.size() < offset + length) return -1;
    for (int i = 0; i < 4; ++i) {
      Bytes address(length);
      inet_pton(family.ipv6 ? AF_INET6 : AF_INET, family.backends[i], address.data());
      if (std::equal(address.begin(), address.end(), frame.begin() + static_cast<long>(offset))) return i;
    }
    return -1;
  }

  // The frame the data path must produce for `input` sent to backend
  // `number` on the backend side, built from scratch.
  Bytes expected_output(const Addresses& family, PacketSpec input, int number, uint16_t port = 8080) {
    input.dst = family.backends[number];
    input.dst_port = port;
    input.ttl -= 1;
    input.vlan_ids.clear();
    input.src_mac = TestNetwork::kBackendSideMac;
    input.dst_mac = TestNetwork::backend_mac(number);
    return build_packet(input);
  }

  // The backend's answer to `request`, as backend `number` sends it:
  // `payload`, and `tcp_flags` for TCP (a SYN-ACK unless told).
  PacketSpec backend_reply(const Addresses& family, const PacketSpec& request, int number, Bytes payload,
                           uint8_t tcp_flags = kTcpSyn | kTcpAck) {
    PacketSpec reply = request;
    reply.src = family.backends[number];
    reply.dst = request.src;
    reply.src_port = 8080;
    reply.dst_port = request.src_port;
    reply.tcp_flags = tcp_flags;
    reply.payload = std::move(payload);
    reply.src_mac = TestNetwork::backend_mac(number);
    reply.dst_mac = TestNetwork::kBackendSideMac;
    return reply;
  }

  // The frame the TC program must send for `reply`: from the service
  // (`service_port`), one hop spent, towards the client.
  Bytes reply_output(const Addresses& family, PacketSpec reply, uint16_t service_port = 80) {
    reply.src = family.service;
    reply.src_port = service_port;
    reply.ttl -= 1;
    reply.src_mac = TestNetwork::kClientSideMac;
    reply.dst_mac = TestNetwork::kClientMac;
    return build_packet(reply);
  }

  static tg_flow_key flow_key(const Addresses& family, const PacketSpec& packet) {
    PacketSpec in_family = packet;
    in_family.ipv6 = family.ipv6;
    return flow_key_of(in_family);
  }

  // The table holding the packet's flow: tg_flows, else tg_overflow_flows; -1: none.
  int flow_table_of(const Addresses& family, const PacketSpec& packet) {
    tg_flow_key key = flow_key(family, packet);
    tg_flow flow{};
    for (int fd : {datapath_->maps().flows.fd(), datapath_->maps().overflow_flows.fd()})
      if (bpf_map_lookup_elem(fd, &key, &flow) == 0) return fd;
    return -1;
  }

  std::optional<tg_flow> flow_of(const Addresses& family, const PacketSpec& packet) {
    tg_flow_key key = flow_key(family, packet);
    tg_flow flow{};
    int fd = flow_table_of(family, packet);
    if (fd < 0 || bpf_map_lookup_elem(fd, &key, &flow)) return std::nullopt;
    return flow;
  }

  void age_flow(const Addresses& family, const PacketSpec& packet, std::chrono::seconds by) {
    tg_flow_key key = flow_key(family, packet);
    tg_flow flow{};
    int fd = flow_table_of(family, packet);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(bpf_map_lookup_elem(fd, &key, &flow), 0);
    flow.last_seen_ns -= static_cast<uint64_t>(std::chrono::nanoseconds(by).count());
    ASSERT_EQ(bpf_map_update_elem(fd, &key, &flow, BPF_EXIST), 0);
  }

  // Flows in both tables.
  size_t flow_count() { return map_entries(datapath_->maps().flows) + map_entries(datapath_->maps().overflow_flows); }

  DropCounts drops() {
    auto counts = read_drops(datapath_->maps().drops);
    EXPECT_TRUE(counts);
    return counts ? *counts : DropCounts{};
  }

  tg_counters service_counters(const ServiceAddress& address) {
    auto id = dataplane_->service_id(address);
    EXPECT_TRUE(id);
    auto counters = read_counters(datapath_->maps().service_stats, id.value_or(0));
    EXPECT_TRUE(counters);
    return counters ? *counters : tg_counters{};
  }

  tg_counters backend_counters(const ServiceAddress& address, const Endpoint& backend) {
    auto index = dataplane_->backend_index(address, backend);
    EXPECT_TRUE(index);
    auto counters = read_counters(datapath_->maps().backend_stats, index.value_or(0));
    EXPECT_TRUE(counters);
    return counters ? *counters : tg_counters{};
  }

  tg_backend_health backend_health(const ServiceAddress& address, const Endpoint& backend) {
    auto index = dataplane_->backend_index(address, backend);
    EXPECT_TRUE(index);
    auto health = read_health(datapath_->maps().backend_health, index.value_or(0));
    EXPECT_TRUE(health);
    return health ? *health : tg_backend_health{};
  }

  TestNetwork network_;
  DataPath* datapath_ = nullptr;
  std::unique_ptr<DataPath> own_datapath_;
  std::unique_ptr<Dataplane> dataplane_;
};

}  // namespace tollgate::test
