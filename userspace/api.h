// The control API (/v1), served on a Unix socket:
//
//   GET    /v1/status                      the agent, its programs and pins
//   GET    /v1/config     PUT /v1/config   the whole desired state
//   GET    /v1/services   POST /v1/services
//   GET    /v1/services/{service}          DELETE /v1/services/{service}
//   GET    /v1/services/{service}/backends POST  .../backends
//   PATCH  /v1/services/{service}/backends/{backend}   {"weight", "state"}
//   DELETE /v1/services/{service}/backends/{backend}
//   GET    /v1/stats
//   GET    /v1/conntrack[?limit=N]         DELETE /v1/conntrack
//   GET    /v1/metrics                     Prometheus text
//   GET    /v1/policy                      global lists, events, every service's policy
//   GET    /v1/policy/access  PUT  DELETE  the global allow and deny lists
//   GET    /v1/services/{service}/policy  PUT  DELETE   a service's policy, whole
//   GET    /v1/events[?after=SEQ&limit=N]  data path events after SEQ
//
// {service} and {backend} are written as operators write them, percent-
// encoded: 198.18.100.1%3A80%2Ftcp, 198.18.1.11%3A8080.
//
// Every request is authorized by the caller's uid and groups first (403
// otherwise). A mutation is validated whole (400 naming the field), then
// applied whole through the Controller. Every mutation, and every denied
// or invalid request, is written to the audit log.
#pragma once

#include <set>

#include "audit.h"
#include "controller.h"
#include "events.h"
#include "health.h"
#include "http_server.h"

namespace tollgate {

struct AccessPolicy {
  std::set<uid_t> uids{0};
  std::set<gid_t> gids;
  // Whether `caller` may use the API; when not, why.
  std::optional<std::string> refuse(const Caller& caller) const;
};

// What /v1/status reports beside the state.
struct AgentInfo {
  std::string version;
  std::string pin_dir;
  std::string state_dir;
  bool adopted = false;
  uint32_t xdp_program_id = 0;
  uint32_t tc_program_id = 0;
  std::string xdp_mode;
  uint32_t flow_capacity = 0;
};

class Api {
 public:
  // `health` (may be null) adds the backends' health to what they show;
  // `events` (may be null) serves /v1/events.
  Api(Controller& controller, AuditLog& audit, AccessPolicy access, AgentInfo info,
      const HealthMonitor* health = nullptr, const EventMonitor* events = nullptr);

  HttpResponse handle(const HttpRequest& request);
  // Requests the HTTP layer refused (malformed, too large, too slow).
  void audit_rejected(const Caller& caller, const HttpResponse& response);

 private:
  struct Outcome;
  Outcome route(const HttpRequest& request);
  // The backends of `service` as configured, with their health, whether
  // they are selectable now and their active flows.
  Result<nlohmann::json> backends_status(const ServiceSpec& service) const;

  Controller& controller_;
  AuditLog& audit_;
  AccessPolicy access_;
  AgentInfo info_;
  const HealthMonitor* health_;
  const EventMonitor* events_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace tollgate
