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

#include <string>
#include <string_view>
#include <vector>

#include "dataplane.h"
#include "result.h"

namespace tollgate {

struct Config {
  FlowTimeouts timeouts;
  std::vector<ServiceSpec> services;
};

// Parses and validates the whole text; an error names the place
// ("line 3, column 7: ..." or "services[1].backends[0].weight: ...").
Result<Config> parse_config(std::string_view text);
Result<Config> load_config_file(const std::string& path);

std::string_view backend_state_name(BackendState state);

}  // namespace tollgate
