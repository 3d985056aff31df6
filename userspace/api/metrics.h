// The agent's metrics in the Prometheus text format (version 0.0.4):
// per backend its traffic, active flows, selectability, health check
// results, circuit state and the data path's connection-attempt counters;
// drops by reason; events by kind; connection table occupancy; the API's
// own connections. Served at GET /v1/metrics.
#pragma once

#include <string>

#include "controller.h"
#include "events.h"
#include "health.h"
#include "http_server.h"

namespace tollgate {

// Reads a snapshot of the controller; takes no lock of it. `health` and
// `events` may be null.
Result<std::string> prometheus_metrics(const Controller& controller, const HealthMonitor* health,
                                       const EventMonitor* events);

// The API server's connections: open, admitted, refused by reason, cut by
// a deadline, memory given back.
std::string api_connection_metrics(const HttpServerCounters& counters);
// The idle flows the agent's sweeper deleted (FlowSweeper::swept()).
std::string swept_flows_metric(uint64_t swept);

// tollgate_build_info{version="..."} 1: which build answers.
std::string build_info_metric(std::string_view version);

}  // namespace tollgate
