// The declarative configuration file (JSON), the same model the control
// API uses: flow timeouts, global access lists, event settings, and
// services with their backends and policy. The codecs of the pieces are
// in service_codec.h, policy_codec.h and health_codec.h.
//
//   {
//     "timeouts": {"tcp_syn": 30, "tcp_established": 3600, "tcp_closing": 60, "udp": 120},
//     "access": {"allow": [], "deny": ["198.18.0.128/25"]},
//     "events": {"interval_ms": 1000, "per_second": 200},
//     "services": [
//       {"address": "198.18.100.1:80/tcp", "maglev_size": 65537, "scheduler": "maglev",
//        "backends": [{"address": "198.18.1.11:8080", "weight": 1, "state": "up"}],
//        "policy": {"allow": ["198.18.0.0/24"], "deny": [],
//                   "rate_limit": {"packets_per_second": 1000, "burst_packets": 100, "ipv4_prefix": 32},
//                   "new_connections": {"per_second": 500, "burst": 50}}}
//     ]
//   }
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "policy_codec.h"
#include "result.h"
#include "service_codec.h"
#include "spec.h"

namespace tollgate {

struct Config {
  FlowTimeouts timeouts;
  AccessLists access;  // global: every service
  EventSettings events;
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

// The inverse of the parsers: parse_config_json(config_to_json(c)) == c.
nlohmann::json config_to_json(const Config& config);
// A config without services, put in place while `services_now` exist,
// removes them all: a conflict unless the caller says so (`how_to_allow`
// tells how). A body that lost its content, or an emptied file, must not
// wipe the load balancer by accident.
Status check_not_emptying(const Config& next, size_t services_now, std::string_view how_to_allow);
// The total of access-list entries must fit the data path's tries.
Status check_policy_capacity(const Config& config);
// The same for totals already counted (global and every service's).
Status check_acl_capacity(size_t allow, size_t deny);

}  // namespace tollgate
