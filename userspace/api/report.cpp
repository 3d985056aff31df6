#include "report.h"

#include "abi.h"
#include "stats.h"

namespace tollgate {
namespace {

nlohmann::json counters_json(const Result<tg_counters>& counters) {
  if (!counters) return {{"error", counters.error().message}};
  return {{"packets", counters->packets}, {"bytes", counters->bytes}, {"new_flows", counters->new_flows}};
}

}  // namespace

nlohmann::json stats_report(const Snapshot& snapshot, const DataPathMaps& maps) {
  nlohmann::json report;
  report["services"] = nlohmann::json::array();
  for (const auto& entry : snapshot.services.entries()) {
    const ServiceSpec& spec = entry->desired;
    auto id = snapshot.service_id(spec.address);
    if (!id) continue;  // not in the data path (a failed first apply)
    nlohmann::json service = {{"address", spec.address.to_string()},
                              {"counters", counters_json(read_counters(maps.service_stats, *id))}};
    service["backends"] = nlohmann::json::array();
    for (const auto& backend : spec.backends) {
      auto index = snapshot.backend_index(spec.address, backend.endpoint);
      service["backends"].push_back({{"address", backend.endpoint.to_string()},
                                     {"weight", backend.weight},
                                     {"state", backend_state_name(backend.state)},
                                     {"selectable", snapshot.selectable(spec.address, backend)},
                                     {"counters", index ? counters_json(read_counters(maps.backend_stats, *index))
                                                        : nlohmann::json{{"error", "not in the data path"}}}});
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
