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

Status reset_counters(int stats_map_fd, uint32_t index) {
  std::vector<tg_counters> zeros(possible_cpus());
  if (bpf_map_update_elem(stats_map_fd, &index, zeros.data(), BPF_ANY))
    return make_error("map update failed: {} [map = stats, index = {}]", std::strerror(errno), index);
  return {};
}

}  // namespace tollgate
