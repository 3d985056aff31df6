// /v1/stats: services, backends and their counters, and drops by reason,
// as JSON, named from one snapshot of the controller's state.
#pragma once

#include <nlohmann/json.hpp>

#include "controller.h"
#include "loader.h"

namespace tollgate {

// Each backend's "state" is its desired one and "selectable" whether it
// takes new flows (not when held down), as in /v1/services/.../backends.
nlohmann::json stats_report(const Snapshot& snapshot, const DataPathMaps& maps);

}  // namespace tollgate
