#include "reconcile.h"

#include <set>

#include "stats.h"

namespace tollgate {

Status reconcile(Dataplane& dataplane, const Config& config) {
  if (auto status = dataplane.check_capacity(config.services); !status) return status;
  if (auto status = dataplane.set_timeouts(config.timeouts); !status) return status;
  if (auto status = dataplane.set_global_policy(config.access, config.events); !status) return status;
  std::set<ServiceAddress> wanted;
  for (const auto& service : config.services) wanted.insert(service.address);
  for (const auto& address : dataplane.service_addresses()) {
    if (wanted.contains(address)) continue;
    if (auto status = dataplane.remove_service(address); !status) return status;
  }
  for (const auto& service : config.services) {
    if (auto status = dataplane.apply_service(service); !status)
      return make_error("service {}: {}", service.address.to_string(), status.error().message);
  }
  return {};
}

namespace {

nlohmann::json counters_json(const Result<tg_counters>& counters) {
  if (!counters) return {{"error", counters.error().message}};
  return {{"packets", counters->packets}, {"bytes", counters->bytes}, {"new_flows", counters->new_flows}};
}

}  // namespace

nlohmann::json stats_report(const Dataplane& dataplane, const MapFds& maps) {
  nlohmann::json report;
  report["services"] = nlohmann::json::array();
  for (const auto& address : dataplane.service_addresses()) {
    const ServiceSpec* spec = dataplane.service_spec(address);
    nlohmann::json service = {
        {"address", address.to_string()},
        {"counters", counters_json(read_counters(maps.service_stats, *dataplane.service_id(address)))}};
    service["backends"] = nlohmann::json::array();
    for (const auto& backend : spec->backends) {
      auto index = dataplane.backend_index(address, backend.endpoint);
      service["backends"].push_back({{"address", backend.endpoint.to_string()},
                                     {"weight", backend.weight},
                                     {"state", backend_state_name(backend.state)},
                                     {"counters", counters_json(read_counters(maps.backend_stats, *index))}});
    }
    report["services"].push_back(std::move(service));
  }
  nlohmann::json drops = nlohmann::json::object();
  if (auto counts = read_drops(maps.drops); counts) {
    for (int reason = 0; reason < TG_DROP_REASON_COUNT; ++reason)
      drops[std::string(drop_reason_name(static_cast<tg_drop_reason>(reason)))] = (*counts)[reason];
  }
  report["drops"] = drops;
  return report;
}

}  // namespace tollgate
