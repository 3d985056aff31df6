#include "flows.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

namespace tollgate {
namespace {

std::string_view flow_state_name(uint8_t state) {
  switch (state) {
    case TG_FLOW_UDP: return "udp";
    case TG_FLOW_TCP_SYN: return "syn";
    case TG_FLOW_TCP_ESTABLISHED: return "established";
    case TG_FLOW_TCP_CLOSING: return "closing";
  }
  return "unknown";
}

// Every key of a hash map, read before any change to it. Bounded: when the
// data path evicts the key we stand on, the walk starts over.
std::vector<tg_flow_key> all_keys(int fd) {
  constexpr size_t kMaxSteps = size_t{2} << 26;  // twice the largest --flow-capacity
  std::vector<tg_flow_key> keys;
  tg_flow_key key{}, next{};
  bool first = true;
  while (keys.size() < kMaxSteps && bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0) {
    first = false;
    key = next;
    keys.push_back(key);
  }
  return keys;
}

}  // namespace

Result<nlohmann::json> list_flows(const Dataplane& dataplane, const MapFds& maps, size_t limit) {
  // Backend slot -> address, from what the agent wrote.
  std::map<uint32_t, std::string> backends;
  for (const auto& address : dataplane.service_addresses())
    for (const auto& backend : dataplane.service_spec(address)->backends)
      if (auto index = dataplane.backend_index(address, backend.endpoint))
        backends[*index] = backend.endpoint.to_string();

  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);  // bpf_ktime_get_coarse_ns()'s clock
  const uint64_t now_ns = static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec);

  nlohmann::json flows = nlohmann::json::array();
  size_t total = 0;
  for (const auto& key : all_keys(maps.flows)) {
    tg_flow value{};
    if (bpf_map_lookup_elem(maps.flows, &key, &value)) continue;  // expired meanwhile
    ++total;
    if (flows.size() >= limit) continue;
    if (key.family != TG_FAMILY_IPV4 && key.family != TG_FAMILY_IPV6) continue;
    const auto family = static_cast<Family>(key.family);
    Endpoint client{IpAddress::from_words(key.src_addr, family), ntohs(key.src_port)};
    ServiceAddress service{{IpAddress::from_words(key.dst_addr, family), ntohs(key.dst_port)},
                           static_cast<Protocol>(key.protocol)};
    auto backend = backends.find(value.backend_index);
    const double idle = now_ns > value.last_seen_ns ? static_cast<double>(now_ns - value.last_seen_ns) / 1e9 : 0.0;
    flows.push_back(
        {{"client", client.to_string()},
         {"service", service.to_string()},
         {"backend", backend == backends.end() ? fmt::format("slot {}", value.backend_index) : backend->second},
         {"state", flow_state_name(value.state)},
         {"idle_seconds", idle}});
  }
  return nlohmann::json{{"flows", flows}, {"total", total}, {"truncated", total > flows.size()}};
}

Result<size_t> flush_flows(const MapFds& maps) {
  size_t flushed = 0;
  for (int fd : {maps.flows, maps.reverse_flows}) {
    for (const auto& key : all_keys(fd)) {
      if (bpf_map_delete_elem(fd, &key) == 0) {
        if (fd == maps.flows) ++flushed;
      } else if (errno != ENOENT) {
        return make_error("map delete failed: {} [map = {}]", std::strerror(errno),
                          fd == maps.flows ? "tg_flows" : "tg_reverse_flows");
      }
    }
  }
  return flushed;
}

}  // namespace tollgate
