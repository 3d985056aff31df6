#include "stats.h"

#include <bpf/libbpf.h>

#include <cerrno>
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

// Entry `index` of a per-CPU array of `Value`s, one per CPU. An index past
// the array's end is an error too (the kernel answers ENOENT).
template <class Value>
Result<std::vector<Value>> read_per_cpu(const MapHandle& map, uint32_t index) {
  std::vector<Value> per_cpu(possible_cpus());
  const std::string detail = fmt::format("index = {}", index);
  auto found = map.lookup_bytes(&index, per_cpu.data(), detail);
  if (!found) return found.error();
  if (!*found) return map.error("lookup", ENOENT, detail);
  return per_cpu;
}

// Zeroes `index` on every CPU of a per-CPU map of `Value`s.
template <class Value>
Status zero_per_cpu(const MapHandle& map, uint32_t index) {
  std::vector<Value> zeros(possible_cpus());
  return map.update_bytes(&index, zeros.data(), BPF_ANY, fmt::format("index = {}", index));
}

}  // namespace

Result<tg_counters> read_counters(const MapHandle& stats_map, uint32_t index) {
  auto per_cpu = read_per_cpu<tg_counters>(stats_map, index);
  if (!per_cpu) return per_cpu.error();
  tg_counters total{};
  for (const auto& counters : *per_cpu) {
    total.packets += counters.packets;
    total.bytes += counters.bytes;
    total.new_flows += counters.new_flows;
  }
  return total;
}

Result<DropCounts> read_drops(const MapHandle& drops_map) {
  DropCounts totals{};
  for (uint32_t reason = 0; reason < TG_DROP_REASON_COUNT; ++reason) {
    auto per_cpu = read_per_cpu<uint64_t>(drops_map, reason);
    if (!per_cpu) return per_cpu.error();
    for (uint64_t count : *per_cpu) totals[reason] += count;
  }
  return totals;
}

Result<tg_backend_health> read_health(const MapHandle& health_map, uint32_t index) {
  auto per_cpu = read_per_cpu<tg_backend_health>(health_map, index);
  if (!per_cpu) return per_cpu.error();
  tg_backend_health total{};
  for (const auto& health : *per_cpu) {
    total.handshakes += health.handshakes;
    total.syn_retransmits += health.syn_retransmits;
    total.syn_resets += health.syn_resets;
    total.retried += health.retried;
    total.udp_replies += health.udp_replies;
    total.udp_unreachable += health.udp_unreachable;
  }
  return total;
}

Result<EventStats> read_event_stats(const MapHandle& event_stats_map) {
  EventStats totals{};
  for (uint32_t kind = 0; kind < TG_EVENT_KIND_COUNT; ++kind) {
    auto per_cpu = read_per_cpu<tg_event_stats>(event_stats_map, kind);
    if (!per_cpu) return per_cpu.error();
    for (const auto& stats : *per_cpu) {
      totals[kind].occurrences += stats.occurrences;
      totals[kind].reported += stats.reported;
    }
  }
  return totals;
}

Status reset_counters(const MapHandle& stats_map, uint32_t index) {
  return zero_per_cpu<tg_counters>(stats_map, index);
}

Status reset_health(const MapHandle& health_map, uint32_t index) {
  return zero_per_cpu<tg_backend_health>(health_map, index);
}

}  // namespace tollgate
