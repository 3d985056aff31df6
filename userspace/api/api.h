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
//   GET    /v1/metrics                     Prometheus text (also on --metrics-address)
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
// handed to the Controller as a change of one service (or of the global
// settings, or the whole config for PUT /v1/config). An error's kind
// gives the status: invalid 400, not found 404, conflict or capacity 409,
// the kernel or a file 500. Every mutation, and every denied or invalid
// request, is written to the audit log.
#pragma once

#include <set>
#include <vector>

#include "audit.h"
#include "controller.h"
#include "events.h"
#include "flows.h"
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
  // `events` (may be null) serves /v1/events; `connections` (may be null),
  // the server's counters, and `sweeper` (may be null), the flows it
  // deleted, add themselves to /v1/metrics.
  Api(Controller& controller, AuditLog& audit, AccessPolicy access, AgentInfo info,
      const HealthMonitor* health = nullptr, const EventMonitor* events = nullptr,
      const HttpServerCounters* connections = nullptr, const FlowSweeper* sweeper = nullptr);

  // Safe to call from several threads at once: reads take the controller's
  // snapshot, mutations go through its lock.
  HttpResponse handle(const HttpRequest& request);
  // Requests the HTTP layer refused (malformed, too large, too slow).
  void audit_rejected(const Caller& caller, const HttpResponse& response);
  // The Prometheus text of GET /v1/metrics, also served to scrapers
  // (ScrapeServer): the agent's build, the data path, the API's connections.
  Result<std::string> metrics() const;

  struct Call;
  struct Outcome;

 private:
  struct Route;
  static const std::vector<Route>& routes();
  Outcome dispatch(const HttpRequest& request);

  Outcome get_status(const Call& call);
  Outcome get_config(const Call& call);
  Outcome put_config(const Call& call);
  Outcome get_metrics(const Call& call);
  Outcome get_stats(const Call& call);
  Outcome get_conntrack(const Call& call);
  Outcome delete_conntrack(const Call& call);
  Outcome get_events(const Call& call);
  Outcome get_policy(const Call& call);
  Outcome get_access(const Call& call);
  Outcome set_access(const Call& call);
  Outcome list_services(const Call& call);
  Outcome add_service(const Call& call);
  Outcome get_service(const Call& call);
  Outcome remove_service(const Call& call);
  Outcome get_service_policy(const Call& call);
  Outcome update_service(const Call& call);
  Outcome set_service_policy(const Call& call);
  Outcome list_backends(const Call& call);
  Outcome add_backend(const Call& call);
  Outcome get_backend(const Call& call);
  Outcome update_backend(const Call& call);
  Outcome remove_backend(const Call& call);

  // The backends of `service` as configured, with their health, whether
  // they are selectable now and their active flows.
  Result<nlohmann::json> backends_status(const Snapshot& snapshot, const ServiceSpec& service) const;

  Controller& controller_;
  AuditLog& audit_;
  AccessPolicy access_;
  AgentInfo info_;
  const HealthMonitor* health_;
  const EventMonitor* events_;
  const HttpServerCounters* connections_;
  const FlowSweeper* sweeper_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace tollgate
