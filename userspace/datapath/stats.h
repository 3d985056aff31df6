// Reading the data path's per-CPU counters, summed over CPUs.
#pragma once

#include <array>
#include <cstdint>

#include "abi.h"
#include "map_handle.h"
#include "result.h"

namespace tollgate {

using DropCounts = std::array<uint64_t, TG_DROP_REASON_COUNT>;

Result<tg_counters> read_counters(const MapHandle& stats_map, uint32_t index);
Result<DropCounts> read_drops(const MapHandle& drops_map);
Result<tg_backend_health> read_health(const MapHandle& health_map, uint32_t index);
using EventStats = std::array<tg_event_stats, TG_EVENT_KIND_COUNT>;
Result<EventStats> read_event_stats(const MapHandle& event_stats_map);
// Zeroes one entry on every CPU (a reused service id or backend slot).
Status reset_counters(const MapHandle& stats_map, uint32_t index);
Status reset_health(const MapHandle& health_map, uint32_t index);

}  // namespace tollgate
