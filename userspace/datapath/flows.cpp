#include "flows.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

extern "C" {
#include "tollgate_flow.h"
}

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

uint64_t monotonic_coarse_ns() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);  // bpf_ktime_get_coarse_ns()'s clock
  return static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec);
}

// tg_service_key as a std::map key: fixed-width fields, no padding.
struct ServiceKeyLess {
  bool operator()(const tg_service_key& a, const tg_service_key& b) const { return std::memcmp(&a, &b, sizeof(a)) < 0; }
};

// The service a packet of `flow` reaches now, found as the data path finds
// it (tg_lookup_service() in bpf/lib/steer.h): the exact port first, then
// the port wildcard. None: no service has that address.
std::optional<uint32_t> current_service_id(int services_fd, tg_service_key key) {
  for (uint16_t port : {key.port, uint16_t{0}}) {
    key.port = port;
    tg_service service{};
    if (bpf_map_lookup_elem(services_fd, &key, &service) == 0) return service.service_id;
  }
  return std::nullopt;
}

tg_service_key service_key_of(const tg_flow_key& flow) {
  tg_service_key key{};
  std::memcpy(key.addr, flow.dst_addr, sizeof(key.addr));
  key.port = flow.dst_port;
  key.protocol = flow.protocol;
  key.family = flow.family;
  return key;
}

}  // namespace

Result<std::map<uint32_t, uint64_t>> active_flow_counts(const MapFds& maps) {
  tg_config config{};
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(maps.config, &zero, &config))
    return make_error("map lookup failed: {} [map = tg_config]", std::strerror(errno));
  // Read once each: the service of an address, the backend slot of an index.
  std::map<tg_service_key, std::optional<uint32_t>, ServiceKeyLess> services;
  std::map<uint32_t, std::optional<tg_backend>> slots;
  std::map<uint32_t, uint64_t> counts;
  const uint64_t now = monotonic_coarse_ns();
  for (int fd : {maps.flows, maps.new_flows}) {
    for (const auto& key : all_keys(fd)) {
      tg_flow flow{};
      if (bpf_map_lookup_elem(fd, &key, &flow)) continue;
      // A closing flow is not waited for; an expired one is steered anew.
      if (flow.state == TG_FLOW_TCP_CLOSING || tg_flow_expired(&flow, &config, now)) continue;
      auto [service, service_unread] = services.try_emplace(service_key_of(key));
      if (service_unread) service->second = current_service_id(maps.services, service->first);
      if (!service->second) continue;
      auto [slot, slot_unread] = slots.try_emplace(flow.backend_index);
      if (slot_unread) {
        tg_backend backend{};
        if (bpf_map_lookup_elem(maps.backends, &flow.backend_index, &backend) == 0) slot->second = backend;
      }
      // The data path's own rule: its next packet would go to this backend.
      if (!tg_flow_holds_backend(&flow, *service->second, slot->second ? &*slot->second : nullptr)) continue;
      ++counts[flow.backend_index];
    }
  }
  return counts;
}

Result<nlohmann::json> list_flows(const std::map<uint32_t, BackendKey>& backend_keys, const MapFds& maps,
                                  size_t limit) {
  std::map<uint32_t, std::string> backends;
  for (const auto& [index, key] : backend_keys) backends[index] = key.second.to_string();

  const uint64_t now_ns = monotonic_coarse_ns();

  nlohmann::json flows = nlohmann::json::array();
  size_t total = 0;
  for (int fd : {maps.flows, maps.new_flows}) {
    for (const auto& key : all_keys(fd)) {
      tg_flow value{};
      if (bpf_map_lookup_elem(fd, &key, &value)) continue;  // expired meanwhile
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
           {"table", fd == maps.flows ? "flows" : "new_flows"},
           {"idle_seconds", idle}});
    }
  }
  return nlohmann::json{{"flows", flows}, {"total", total}, {"truncated", total > flows.size()}};
}

Result<size_t> flush_flows(const MapFds& maps) {
  size_t flushed = 0;
  const std::pair<int, const char*> tables[] = {{maps.flows, "tg_flows"},
                                                {maps.reverse_flows, "tg_reverse_flows"},
                                                {maps.new_flows, "tg_new_flows"},
                                                {maps.new_reverse, "tg_new_reverse"}};
  for (const auto& [fd, name] : tables) {
    for (const auto& key : all_keys(fd)) {
      if (bpf_map_delete_elem(fd, &key) == 0) {
        if (fd == maps.flows || fd == maps.new_flows) ++flushed;
      } else if (errno != ENOENT) {
        return make_error("map delete failed: {} [map = {}]", std::strerror(errno), name);
      }
    }
  }
  return flushed;
}

FlowOccupancy flow_occupancy(const MapFds& maps) {
  return {all_keys(maps.flows).size(), all_keys(maps.new_flows).size()};
}

}  // namespace tollgate
