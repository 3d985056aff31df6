// The connection table as operators see it: list and flush.
#pragma once

#include <nlohmann/json.hpp>

#include "dataplane.h"
#include "loader.h"
#include "result.h"

namespace tollgate {

// Up to `limit` flows ({"client", "service", "backend", "state",
// "idle_seconds"}), and how many there are in all.
Result<nlohmann::json> list_flows(const Dataplane& dataplane, const MapFds& maps, size_t limit);
// Deletes every flow (both directions); returns how many forward flows went.
// A flow that sends again is steered afresh.
Result<size_t> flush_flows(const MapFds& maps);

}  // namespace tollgate
