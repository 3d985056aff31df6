// What the sections of tollgate_bench_datapath share: the test network's
// addresses, the services and packets made of them, and Bench, one loaded
// data path with its Dataplane and the floor programs.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "dataplane.h"
#include "loader.h"
#include "netns.h"
#include "packet.h"

struct bench;  // bench/bench.bpf.c's skeleton

namespace tollgate::datapath_bench {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using test::Bytes;
using test::PacketSpec;
using test::TestNetwork;

// The addresses of the test network (tests/bpf/netns.h, tools/lab-topology).
inline constexpr const char* kService = topology::kServiceV4;
inline constexpr const char* kService6 = topology::kServiceV6;
inline constexpr const char* kLimitedService = topology::kOtherServicesV4[0];
inline constexpr const char* kDeniedService = topology::kOtherServicesV4[1];
inline constexpr const char* kNotAService = topology::kNotAServiceV4;
inline constexpr const char* kClient = topology::kBpfClientV4;
inline constexpr const char* kClient6 = topology::kBpfClientV6;
inline constexpr auto kBackends = topology::kBpfBackendsV4;
inline constexpr auto kBackends6 = topology::kBpfBackendsV6;

// Ends the run with `what` on stderr.
[[noreturn]] void fail(const std::string& what);

template <typename T>
T must(Result<T> result, const char* what) {
  if (!result) fail(fmt::format("{}: {}", what, result.error().message));
  return std::move(*result);
}
void must(const Status& status, const char* what);

// Median, min, max and count of `values`.
json summary(std::vector<double> values);

// The scale figures' service `number` (1, 2, ...): 250 from each /24 of
// the range in turn, hosts .1-.250.
std::string scale_service(size_t number);
ServiceAddress service_address(const std::string& address, uint16_t port, const char* protocol);
// `count` backends: the four test backends, then further ports on each.
std::vector<BackendSpec> backends(size_t count, bool ipv6 = false);
ServiceSpec service(const std::string& address, uint16_t port, const char* protocol, size_t backend_count,
                    uint32_t maglev_size = TG_MAGLEV_DEFAULT_SIZE);
PacketSpec client_packet(bool ipv6, uint8_t protocol, const std::string& destination, uint16_t source_port,
                         uint8_t flags);
// Which test backend address a frame is sent to (-1: none), and its port.
std::pair<int, uint16_t> destination_of(const Bytes& frame, bool ipv6);
uint64_t monotonic_ns();

// One loaded data path and its Dataplane, plus the floor programs.
class Bench {
 public:
  Bench(const TestNetwork& network, LoadOptions options);
  ~Bench();
  Bench(const Bench&) = delete;
  Bench& operator=(const Bench&) = delete;

  const DataPathMaps& maps() const { return datapath_->maps(); }
  Dataplane& dataplane() { return *dataplane_; }
  DataPath& datapath() { return *datapath_; }

  struct Run {
    int verdict;
    uint32_t duration_ns;
    Bytes out;
  };

  // One BPF_PROG_TEST_RUN of program `fd` (repeat=1).
  Run run(int fd, bool tc, const Bytes& packet);
  Run xdp(const Bytes& packet) { return run(datapath_->xdp_program_fd(), false, packet); }
  Run tc(const Bytes& packet) { return run(datapath_->tc_program_fd(), true, packet); }
  int floor_fd(bool tc) const;

  // A flow made established (SYN then ACK, or two datagrams) and now in a
  // flow table (the overflow when tg_flows is full); returns the frame the
  // data path makes of its next packet.
  Bytes establish(const PacketSpec& first);
  // The table that holds `key` (tg_flows, else the overflow; nullptr: none),
  // its entry in *flow.
  const MapHandle* flow_table(const tg_flow_key& key, tg_flow* flow);
  uint64_t drops(int reason);

 private:
  const TestNetwork& network_;
  std::unique_ptr<DataPath> datapath_;
  std::unique_ptr<Dataplane> dataplane_;
  ::bench* floors_ = nullptr;
};

void apply(Bench& bench, const ServiceSpec& spec);

// Fills tg_flows (or the overflow table) with `flows` established flows
// from other sources to kService (a service of the bench), made from a
// real one.
void fill_flows(Bench& bench, size_t flows, bool overflow = false);

}  // namespace tollgate::datapath_bench
