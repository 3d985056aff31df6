// The model of what the agent balances: services, their backends, flow
// timeouts. Plain data and its checks; no kernel in sight.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "address.h"
#include "health_spec.h"
#include "policy.h"
#include "result.h"
#include "tollgate_abi.h"

namespace tollgate {

enum class BackendState : uint8_t {
  up = TG_BACKEND_UP,
  draining = TG_BACKEND_DRAINING,
  down = TG_BACKEND_DOWN,
};

inline constexpr uint32_t kMaxWeight = 65535;

struct BackendSpec {
  Endpoint endpoint;
  uint32_t weight = 1;  // 1 .. kMaxWeight
  BackendState state = BackendState::up;

  bool operator==(const BackendSpec&) const = default;
};

struct ServiceSpec {
  ServiceAddress address;
  uint32_t maglev_size = TG_MAGLEV_DEFAULT_SIZE;  // prime
  std::vector<BackendSpec> backends;
  std::optional<HealthCheckSpec> health_check;  // none: no active checks
  OutlierSpec outlier_detection;
  ServicePolicy policy;

  bool operator==(const ServiceSpec&) const = default;
};

// A backend as the agent names it: its service and its address.
using BackendKey = std::pair<ServiceAddress, Endpoint>;

struct FlowTimeouts {
  std::chrono::seconds tcp_syn{30};
  std::chrono::seconds tcp_established{3600};
  std::chrono::seconds tcp_closing{60};
  std::chrono::seconds udp{120};

  bool operator==(const FlowTimeouts&) const = default;
};

// Checks a spec whole; the error names the offending field.
Status validate_service(const ServiceSpec& spec);

// For each backend of `after`, the backend of `before` at the same address
// (nullptr: none, or no `before`). A change mostly keeps the backends'
// order, so they are matched by position first and by a sorted index only
// past the first that moved: O(n) for a drain of one of 1,000.
std::vector<const BackendSpec*> match_backends(const ServiceSpec& after, const ServiceSpec* before);

}  // namespace tollgate
