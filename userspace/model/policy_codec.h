// Policy pieces as JSON, as in the configuration file ("policy" of a
// service; "access" and "events" at the top), for the API's /v1/policy too.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "result.h"
#include "spec.h"

namespace tollgate {

// `path` prefixes the field names in errors.
Result<ServicePolicy> parse_service_policy(const nlohmann::json& object, const std::string& path);
Result<AccessLists> parse_access_lists(const nlohmann::json& object, const std::string& path);
Result<EventSettings> parse_event_settings(const nlohmann::json& object, const std::string& path);
// The inverse of the parsers.
nlohmann::json service_policy_to_json(const ServicePolicy& policy);
nlohmann::json access_lists_to_json(const AccessLists& lists);
nlohmann::json event_settings_to_json(const EventSettings& events);

}  // namespace tollgate
