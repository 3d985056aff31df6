// The connection table as operators see it: list and flush.
#pragma once

#include <map>
#include <nlohmann/json.hpp>

#include "dataplane.h"
#include "loader.h"
#include "result.h"

namespace tollgate {

// Up to `limit` flows ({"client", "service", "backend", "state",
// "idle_seconds"}), and how many there are in all.
Result<nlohmann::json> list_flows(const Dataplane& dataplane, const MapFds& maps, size_t limit);
// Active flows per backend index: flows that are neither closing nor past
// their idle timeout, and whose backend slot still holds the backend they
// were steered to. What a drain waits for.
Result<std::map<uint32_t, uint64_t>> active_flow_counts(const MapFds& maps);

// Deletes every flow (both directions); returns how many forward flows went.
// A flow that sends again is steered afresh.
Result<size_t> flush_flows(const MapFds& maps);

}  // namespace tollgate
