// The connection table as operators see it: list and flush.
#pragma once

#include <map>
#include <nlohmann/json.hpp>

#include "loader.h"
#include "result.h"
#include "spec.h"

namespace tollgate {

// Up to `limit` flows ({"client", "service", "backend", "state", "table",
// "idle_seconds"}), and how many there are in all. "table" is "flows" for a
// flow past its first packet, "new_flows" for one seen once (a SYN).
// `backends` names the slots (the controller's snapshot knows them).
Result<nlohmann::json> list_flows(const std::map<uint32_t, BackendKey>& backends, const DataPathMaps& maps,
                                  size_t limit);
// Active flows per backend index: flows that are neither closing nor past
// their idle timeout, and that still hold their backend by the data path's
// own rule (maps/tollgate_flow.h): their next packet would go to it. What
// a drain waits for.
Result<std::map<uint32_t, uint64_t>> active_flow_counts(const DataPathMaps& maps);

// Deletes every flow (both directions); returns how many forward flows went.
// A flow that sends again is steered afresh.
Result<size_t> flush_flows(const DataPathMaps& maps);

// Entries in the connection tables now (a walk of each, batched).
struct FlowOccupancy {
  size_t flows = 0;
  size_t new_flows = 0;
};
Result<FlowOccupancy> flow_occupancy(const DataPathMaps& maps);

}  // namespace tollgate
