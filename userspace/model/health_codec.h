// A service's health check and outlier detection as JSON (the
// "health_check" and "outlier_detection" of a service).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "health_spec.h"
#include "result.h"

namespace tollgate {

// `path` prefixes the field names in errors.
Result<HealthCheckSpec> parse_health_check(const nlohmann::json& object, const std::string& path);
Result<OutlierSpec> parse_outlier(const nlohmann::json& object, const std::string& path);
nlohmann::json health_check_to_json(const HealthCheckSpec& check);
nlohmann::json outlier_to_json(const OutlierSpec& outlier);

}  // namespace tollgate
