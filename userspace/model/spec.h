// The model of what the agent balances: services, their backends, flow
// timeouts. Plain data and its checks; no kernel in sight.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
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

// How a service picks the backend of a new flow (README, "Schedulers").
enum class Scheduler : uint8_t {
  maglev = TG_ALGORITHM_MAGLEV,
  source_hash = TG_ALGORITHM_SOURCE_HASH,
  round_robin = TG_ALGORITHM_ROUND_ROBIN,
  random = TG_ALGORITHM_RANDOM,
  least_connections = TG_ALGORITHM_LEAST_CONNECTIONS,
  least_requests = TG_ALGORITHM_LEAST_REQUESTS,
};
inline constexpr Scheduler kSchedulers[] = {Scheduler::maglev, Scheduler::source_hash,       Scheduler::round_robin,
                                            Scheduler::random, Scheduler::least_connections, Scheduler::least_requests};
std::string_view scheduler_name(Scheduler scheduler);
// "maglev", "source-hash", "round-robin", "random", "least-connections",
// "least-requests"; an error lists them.
Result<Scheduler> parse_scheduler(std::string_view name);

struct ServiceSpec {
  ServiceAddress address;
  uint32_t maglev_size = TG_MAGLEV_DEFAULT_SIZE;  // prime: entries of its table, whatever the scheduler
  std::vector<BackendSpec> backends;
  std::optional<HealthCheckSpec> health_check;  // none: no active checks
  OutlierSpec outlier_detection;
  ServicePolicy policy;
  Scheduler scheduler = Scheduler::maglev;
  // source-hash: the leading bits of the client's address that pick the
  // backend; none: all of them (32 or 128).
  std::optional<uint8_t> source_prefix;

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
