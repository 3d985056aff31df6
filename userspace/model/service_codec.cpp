#include "service_codec.h"

#include <utility>

#include "health_codec.h"
#include "json_fields.h"
#include "policy_codec.h"

namespace tollgate {

using namespace json_fields;

Result<BackendState> parse_backend_state(const std::string& text, const std::string& path) {
  if (text == "up") return BackendState::up;
  if (text == "draining") return BackendState::draining;
  if (text == "down") return BackendState::down;
  return make_error("{}: unknown state '{}' (expected up, draining or down)", path, text);
}

Result<BackendSpec> parse_backend_json(const json& object, const std::string& path) {
  if (auto status = check_fields(object, path, {"address", "weight", "state"}); !status) return status.error();
  BackendSpec backend;
  if (!object.contains("address")) return make_error("{}: missing", join(path, "address"));
  auto text = string_field(object["address"], join(path, "address"));
  if (!text) return text.error();
  auto endpoint = Endpoint::parse(*text);
  if (!endpoint) return make_error("{}: {}", join(path, "address"), endpoint.error().message);
  backend.endpoint = *endpoint;
  if (object.contains("weight")) {
    auto weight = unsigned_field(object["weight"], join(path, "weight"), 1, kMaxWeight);
    if (!weight) return weight.error();
    backend.weight = static_cast<uint32_t>(*weight);
  }
  if (object.contains("state")) {
    auto state_text = string_field(object["state"], join(path, "state"));
    if (!state_text) return state_text.error();
    auto state = parse_backend_state(*state_text, join(path, "state"));
    if (!state) return state.error();
    backend.state = *state;
  }
  return backend;
}

std::string_view backend_state_name(BackendState state) {
  switch (state) {
    case BackendState::up: return "up";
    case BackendState::draining: return "draining";
    case BackendState::down: return "down";
  }
  return "?";
}

Result<ServiceSpec> parse_service_json(const json& object, const std::string& path) {
  if (auto status = check_fields(object, path,
                                 {"address", "maglev_size", "scheduler", "source_prefix", "backends", "health_check",
                                  "outlier_detection", "policy"});
      !status)
    return status.error();
  ServiceSpec service;
  if (!object.contains("address")) return make_error("{}: missing", join(path, "address"));
  auto text = string_field(object["address"], join(path, "address"));
  if (!text) return text.error();
  auto address = ServiceAddress::parse(*text);
  if (!address) return make_error("{}: {}", join(path, "address"), address.error().message);
  service.address = *address;
  if (object.contains("maglev_size")) {
    auto size = unsigned_field(object["maglev_size"], join(path, "maglev_size"), 2, TG_MAGLEV_MAX_SIZE);
    if (!size) return size.error();
    service.maglev_size = static_cast<uint32_t>(*size);
  }
  if (object.contains("scheduler")) {
    auto name = string_field(object["scheduler"], join(path, "scheduler"));
    if (!name) return name.error();
    auto scheduler = parse_scheduler(*name);
    if (!scheduler) return make_error("{}: {}", join(path, "scheduler"), scheduler.error().message);
    service.scheduler = *scheduler;
  }
  if (object.contains("source_prefix") && !object["source_prefix"].is_null()) {
    auto prefix = unsigned_field(object["source_prefix"], join(path, "source_prefix"), 1, 128);
    if (!prefix) return prefix.error();
    service.source_prefix = static_cast<uint8_t>(*prefix);
  }
  if (object.contains("backends")) {
    const json& backends = object["backends"];
    if (!backends.is_array()) return make_error("{}: expected an array", join(path, "backends"));
    for (size_t i = 0; i < backends.size(); ++i) {
      auto backend = parse_backend_json(backends[i], fmt::format("{}[{}]", join(path, "backends"), i));
      if (!backend) return backend.error();
      service.backends.push_back(*backend);
    }
  }
  if (object.contains("health_check") && !object["health_check"].is_null()) {
    auto check = parse_health_check(object["health_check"], join(path, "health_check"));
    if (!check) return check.error();
    service.health_check = *check;
  }
  if (object.contains("outlier_detection")) {
    auto outlier = parse_outlier(object["outlier_detection"], join(path, "outlier_detection"));
    if (!outlier) return outlier.error();
    service.outlier_detection = *outlier;
  }
  if (object.contains("policy") && !object["policy"].is_null()) {
    auto policy = parse_service_policy(object["policy"], join(path, "policy"));
    if (!policy) return policy.error();
    service.policy = std::move(*policy);
  }
  if (auto status = validate_service(service); !status) return make_error("{}", join(path, status.error().message));
  return service;
}

json backend_to_json(const BackendSpec& backend) {
  return {{"address", backend.endpoint.to_string()},
          {"weight", backend.weight},
          {"state", backend_state_name(backend.state)}};
}

json service_to_json(const ServiceSpec& service) {
  json backends = json::array();
  for (const auto& backend : service.backends) backends.push_back(backend_to_json(backend));
  json out = {{"address", service.address.to_string()},
              {"maglev_size", service.maglev_size},
              {"scheduler", scheduler_name(service.scheduler)},
              {"backends", backends},
              {"outlier_detection", outlier_to_json(service.outlier_detection)}};
  if (service.source_prefix) out["source_prefix"] = *service.source_prefix;
  if (service.health_check) out["health_check"] = health_check_to_json(*service.health_check);
  if (!service.policy.empty()) out["policy"] = service_policy_to_json(service.policy);
  return out;
}

}  // namespace tollgate
