#include "flows.h"

#include <arpa/inet.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "flow_walk.h"
#include "log.h"

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
Result<std::optional<uint32_t>> current_service_id(const MapHandle& services, tg_service_key key) {
  for (uint16_t port : {key.port, uint16_t{0}}) {
    key.port = port;
    tg_service service{};
    auto found = services.lookup(key, service);
    if (!found) return found.error();
    if (*found) return std::optional<uint32_t>(service.service_id);
  }
  return std::optional<uint32_t>();
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

Result<std::map<uint32_t, uint64_t>> active_flow_counts(const DataPathMaps& maps) {
  tg_config config{};
  uint32_t zero = 0;
  auto config_found = maps.config.lookup(zero, config);
  if (!config_found) return config_found.error();
  if (!*config_found) return maps.config.error("lookup", ENOENT);
  // Read once each: the service of an address, the backend slot of an index.
  std::map<tg_service_key, std::optional<uint32_t>, ServiceKeyLess> services;
  std::map<uint32_t, std::optional<tg_backend>> slots;
  std::map<uint32_t, uint64_t> counts;
  const uint64_t now = monotonic_coarse_ns();
  auto count = [&](const tg_flow_key& key, const tg_flow& flow) -> Status {
    // A closing flow is not waited for; an expired one is steered anew.
    if (flow.state == TG_FLOW_TCP_CLOSING || tg_flow_expired(&flow, &config, now)) return {};
    auto [service, service_unread] = services.try_emplace(service_key_of(key));
    if (service_unread) {
      auto id = current_service_id(maps.services, service->first);
      if (!id) return id.error();
      service->second = *id;
    }
    if (!service->second) return {};
    auto [slot, slot_unread] = slots.try_emplace(flow.backend_index);
    if (slot_unread) {
      tg_backend backend{};
      auto found = maps.backends.lookup(flow.backend_index, backend);
      if (!found) return found.error();
      if (*found) slot->second = backend;
    }
    // The data path's own rule: its next packet would go to this backend.
    if (tg_flow_holds_backend(&flow, *service->second, slot->second ? &*slot->second : nullptr))
      ++counts[flow.backend_index];
    return {};
  };
  for (const MapHandle* table : {&maps.flows, &maps.overflow_flows})
    if (auto walked = walk_entries<tg_flow_key, tg_flow>(*table, count); !walked) return walked.error();
  return counts;
}

Result<nlohmann::json> list_flows(const std::map<uint32_t, BackendKey>& backend_keys, const DataPathMaps& maps,
                                  size_t limit) {
  std::map<uint32_t, std::string> backends;
  for (const auto& [index, key] : backend_keys) backends[index] = key.second.to_string();

  const uint64_t now_ns = monotonic_coarse_ns();

  nlohmann::json flows = nlohmann::json::array();
  size_t total = 0;
  for (const MapHandle* table : {&maps.flows, &maps.overflow_flows}) {
    auto listed = walk_entries<tg_flow_key, tg_flow>(*table, [&](const tg_flow_key& key, const tg_flow& value) {
      ++total;
      if (flows.size() >= limit) return;
      if (key.family != TG_FAMILY_IPV4 && key.family != TG_FAMILY_IPV6) return;
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
           {"table", table == &maps.flows ? "flows" : "overflow"},
           {"idle_seconds", idle}});
    });
    if (!listed) return listed.error();
  }
  return nlohmann::json{{"flows", flows}, {"total", total}, {"truncated", total > flows.size()}};
}

Result<size_t> flush_flows(const DataPathMaps& maps) {
  size_t flushed = 0;
  for (const MapHandle* table : {&maps.flows, &maps.reverse_flows, &maps.overflow_flows}) {
    // Every key read before any is deleted: a walk does not stand on a
    // key it deleted.
    auto keys = all_keys<tg_flow_key>(*table);
    if (!keys) return keys.error();
    auto deleted = delete_keys(*table, *keys);
    if (!deleted) return deleted.error();
    if (table == &maps.flows || table == &maps.overflow_flows) flushed += *deleted;
  }
  return flushed;
}

Result<FlowOccupancy> flow_occupancy(const DataPathMaps& maps) {
  auto flows = count_entries(maps.flows);
  if (!flows) return flows.error();
  auto overflow = count_entries(maps.overflow_flows);
  if (!overflow) return overflow.error();
  auto flows_layout = map_layout(maps.flows);
  if (!flows_layout) return flows_layout.error();
  auto overflow_layout = map_layout(maps.overflow_flows);
  if (!overflow_layout) return overflow_layout.error();
  return FlowOccupancy{*flows, *overflow, flows_layout->max_entries, overflow_layout->max_entries};
}

Result<size_t> sweep_flows(const DataPathMaps& maps, ActiveCounts* active) {
  tg_config config{};
  uint32_t zero = 0;
  auto config_found = maps.config.lookup(zero, config);
  if (!config_found) return config_found.error();
  if (!*config_found) return maps.config.error("lookup", ENOENT);
  size_t swept = 0;
  // Counted flows by (backend slot, generation): those that stay, those swept.
  std::map<std::pair<uint32_t, uint32_t>, int64_t> staying, gone_counted;
  for (const MapHandle* table : {&maps.flows, &maps.overflow_flows}) {
    const uint64_t now = monotonic_coarse_ns();
    std::vector<tg_flow_key> idle;
    auto walked = walk_entries<tg_flow_key, tg_flow>(*table, [&](const tg_flow_key& key, const tg_flow& flow) {
      if (tg_flow_expired(&flow, &config, now))
        idle.push_back(key);
      else if (flow.flags & TG_FLOW_COUNTED)
        ++staying[{flow.backend_index, flow.backend_generation}];
    });
    if (!walked) return walked.error();
    // A packet may have come since the walk read it: read again, at the
    // time of the deletion.
    std::vector<tg_flow_key> gone;
    const uint64_t later = monotonic_coarse_ns();
    for (const auto& key : idle) {
      tg_flow flow{};
      auto found = table->lookup(key, flow);
      if (!found) return found.error();
      if (!*found) continue;
      if (tg_flow_expired(&flow, &config, later)) {
        gone.push_back(key);
        if (flow.flags & TG_FLOW_COUNTED) ++gone_counted[{flow.backend_index, flow.backend_generation}];
      } else if (flow.flags & TG_FLOW_COUNTED) {
        ++staying[{flow.backend_index, flow.backend_generation}];
      }
    }
    auto deleted = delete_keys(*table, gone);
    if (!deleted) return deleted.error();
    swept += *deleted;
  }
  if (!active) return swept;
  // Only flows of a slot's present generation count (as in the data path).
  auto generation_of = [&maps](uint32_t index) -> Result<uint32_t> {
    tg_backend backend{};
    auto found = maps.backends.lookup(index, backend);
    if (!found) return found.error();
    return *found ? backend.generation : UINT32_MAX;
  };
  std::map<uint32_t, int64_t> walked;
  for (const auto* counts : {&gone_counted, &staying}) {
    for (const auto& [slot, count] : *counts) {
      auto generation = generation_of(slot.first);
      if (!generation) return generation.error();
      if (*generation != slot.second) continue;
      if (counts == &gone_counted)
        active->add(slot.first, -count);
      else
        walked[slot.first] += count;
    }
  }
  active->reconcile(walked);
  return swept;
}

void FlowSweeper::start() {
  stopping_ = false;
  if (!active_) {
    auto mapped = ActiveCounts::map(maps_.backend_active);
    if (mapped)
      active_.emplace(std::move(*mapped));
    else
      log::warn("flow sweep: least-connections counts go uncorrected: {}", mapped.error().message);
  }
  thread_ = std::thread([this] { run(); });
}

void FlowSweeper::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void FlowSweeper::run() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, interval_, [this] { return stopping_; })) {
    lock.unlock();
    auto swept = sweep_flows(maps_, active_ ? &*active_ : nullptr);
    if (swept) {
      swept_.fetch_add(*swept, std::memory_order_relaxed);
      if (*swept) log::debug("flow sweep: {} idle flows deleted", *swept);
    } else {
      log::warn("flow sweep: {}", swept.error().message);
    }
    lock.lock();
  }
}

}  // namespace tollgate
