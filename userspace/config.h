// The declarative configuration file (JSON), the same model the control
// API uses: flow timeouts and services with their backends.
//
//   {
//     "timeouts": {"tcp_syn": 30, "tcp_established": 3600, "tcp_closing": 60, "udp": 120},
//     "services": [
//       {"address": "198.18.100.1:80/tcp", "maglev_size": 65537,
//        "backends": [{"address": "198.18.1.11:8080", "weight": 1, "state": "up"}]}
//     ]
//   }
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane.h"
#include "result.h"

namespace tollgate {

struct Config {
  FlowTimeouts timeouts;
  std::vector<ServiceSpec> services;

  bool operator==(const Config&) const = default;
};

// Parses and validates the whole text; an error names the place
// ("line 3, column 7: ..." or "services[1].backends[0].weight: ...").
Result<Config> parse_config(std::string_view text);
Result<Config> parse_config_json(const nlohmann::json& document);

// A configuration file as read: the config, and the digest of its bytes
// (to tell whether the file changed since it was applied).
struct ConfigFile {
  Config config;
  std::string digest;
};
Result<ConfigFile> load_config_file(const std::string& path);
// FNV-1a 64 of `content`, 16 hex digits.
std::string content_digest(std::string_view content);

// One service or one backend in the same model (the control API's bodies);
// `path` prefixes the field names in errors.
Result<ServiceSpec> parse_service_json(const nlohmann::json& object, const std::string& path);
Result<BackendSpec> parse_backend_json(const nlohmann::json& object, const std::string& path);
Result<BackendState> parse_backend_state(const std::string& text, const std::string& path);
// The inverse of the parsers: parse_config_json(config_to_json(c)) == c.
nlohmann::json config_to_json(const Config& config);
nlohmann::json service_to_json(const ServiceSpec& service);
nlohmann::json backend_to_json(const BackendSpec& backend);

std::string_view backend_state_name(BackendState state);

}  // namespace tollgate
