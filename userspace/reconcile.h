// Brings the data path to a desired configuration.
#pragma once

#include <nlohmann/json.hpp>

#include "config.h"
#include "dataplane.h"
#include "loader.h"

namespace tollgate {

// Applies `config` (already validated whole): timeouts, removes the
// services it no longer names (freeing their slots first), then brings
// every service it names to its spec. Checks capacity before any change.
Status reconcile(Dataplane& dataplane, const Config& config);

// Services, backends and their counters, and drops by reason, as JSON.
nlohmann::json stats_report(const Dataplane& dataplane, const MapFds& maps);

}  // namespace tollgate
