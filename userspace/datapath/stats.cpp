#include "stats.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace tollgate {
namespace {

size_t possible_cpus() {
  static const size_t count = [] {
    int cpus = libbpf_num_possible_cpus();
    return cpus > 0 ? static_cast<size_t>(cpus) : size_t{1};
  }();
  return count;
}

// Zeroes `index` on every CPU of a per-CPU map of `Value`s.
template <class Value>
Status zero_per_cpu(int map_fd, uint32_t index, const char* map_name) {
  std::vector<Value> zeros(possible_cpus());
  if (bpf_map_update_elem(map_fd, &index, zeros.data(), BPF_ANY))
    return make_error("map update failed: {} [map = {}, index = {}]", std::strerror(errno), map_name, index);
  return {};
}

}  // namespace

Result<tg_counters> read_counters(int stats_map_fd, uint32_t index) {
  std::vector<tg_counters> per_cpu(possible_cpus());
  if (bpf_map_lookup_elem(stats_map_fd, &index, per_cpu.data()))
    return make_error("map lookup failed: {} [map = stats, index = {}]", std::strerror(errno), index);
  tg_counters total{};
  for (const auto& counters : per_cpu) {
    total.packets += counters.packets;
    total.bytes += counters.bytes;
    total.new_flows += counters.new_flows;
  }
  return total;
}

Result<DropCounts> read_drops(int drops_map_fd) {
  DropCounts totals{};
  std::vector<uint64_t> per_cpu(possible_cpus());
  for (uint32_t reason = 0; reason < TG_DROP_REASON_COUNT; ++reason) {
    if (bpf_map_lookup_elem(drops_map_fd, &reason, per_cpu.data()))
      return make_error("map lookup failed: {} [map = tg_drops, index = {}]", std::strerror(errno), reason);
    for (uint64_t count : per_cpu) totals[reason] += count;
  }
  return totals;
}

Result<tg_backend_health> read_health(int health_map_fd, uint32_t index) {
  std::vector<tg_backend_health> per_cpu(possible_cpus());
  if (bpf_map_lookup_elem(health_map_fd, &index, per_cpu.data()))
    return make_error("map lookup failed: {} [map = tg_backend_health, index = {}]", std::strerror(errno), index);
  tg_backend_health total{};
  for (const auto& health : per_cpu) {
    total.handshakes += health.handshakes;
    total.syn_retransmits += health.syn_retransmits;
    total.syn_resets += health.syn_resets;
    total.retried += health.retried;
  }
  return total;
}

Result<EventStats> read_event_stats(int event_stats_map_fd) {
  EventStats totals{};
  std::vector<tg_event_stats> per_cpu(possible_cpus());
  for (uint32_t kind = 0; kind < TG_EVENT_KIND_COUNT; ++kind) {
    if (bpf_map_lookup_elem(event_stats_map_fd, &kind, per_cpu.data()))
      return make_error("map lookup failed: {} [map = tg_event_stats, index = {}]", std::strerror(errno), kind);
    for (const auto& stats : per_cpu) {
      totals[kind].occurrences += stats.occurrences;
      totals[kind].reported += stats.reported;
    }
  }
  return totals;
}

Status reset_counters(int stats_map_fd, uint32_t index) {
  return zero_per_cpu<tg_counters>(stats_map_fd, index, "stats");
}

Status reset_health(int health_map_fd, uint32_t index) {
  return zero_per_cpu<tg_backend_health>(health_map_fd, index, "tg_backend_health");
}

}  // namespace tollgate
