// One service or one backend as JSON, in the model of the configuration
// file (the control API's bodies too).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "result.h"
#include "spec.h"

namespace tollgate {

// `path` prefixes the field names in errors.
Result<ServiceSpec> parse_service_json(const nlohmann::json& object, const std::string& path);
Result<BackendSpec> parse_backend_json(const nlohmann::json& object, const std::string& path);
Result<BackendState> parse_backend_state(const std::string& text, const std::string& path);
// The inverse of the parsers.
nlohmann::json service_to_json(const ServiceSpec& service);
nlohmann::json backend_to_json(const BackendSpec& backend);

std::string_view backend_state_name(BackendState state);

}  // namespace tollgate
