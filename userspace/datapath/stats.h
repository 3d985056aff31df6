// Reading the data path's per-CPU counters, summed over CPUs.
#pragma once

#include <array>
#include <cstdint>

#include "abi.h"
#include "result.h"

namespace tollgate {

using DropCounts = std::array<uint64_t, TG_DROP_REASON_COUNT>;

Result<tg_counters> read_counters(int stats_map_fd, uint32_t index);
Result<DropCounts> read_drops(int drops_map_fd);
Result<tg_backend_health> read_health(int health_map_fd, uint32_t index);
using EventStats = std::array<tg_event_stats, TG_EVENT_KIND_COUNT>;
Result<EventStats> read_event_stats(int event_stats_map_fd);
// Zeroes one entry on every CPU (a reused service id or backend slot).
Status reset_counters(int stats_map_fd, uint32_t index);
Status reset_health(int health_map_fd, uint32_t index);

}  // namespace tollgate
