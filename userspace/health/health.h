// The agent's health loop: one thread running the active checks
// (HealthChecker) and, every tick, the passive ejection (OutlierDetector)
// on the data path's per-backend counters. A backend that either finds
// failing is held down through the Controller (out of selection, its flows
// move); it is released when both agree it is fine. Every change is logged
// and audited.
//
// A half-open circuit stays held down while the agent probes the backend:
// with the service's active check when it has one (every interval),
// otherwise with a probe of its own (trial_probe(), every 500 ms, run by the
// same HealthChecker): a TCP connect within 500 ms; for UDP a datagram that
// is not refused (no ICMP port unreachable) within 500 ms. The data path
// counts TCP handshakes, SYNs unanswered or reset, and UDP answers and port
// unreachables, so both protocols have a circuit.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "audit.h"
#include "controller.h"
#include "health_check.h"
#include "outlier.h"

namespace tollgate {

// What the agent knows of one backend's health, for the API and metrics.
struct BackendHealth {
  std::string check = "none";  // none, healthy, unhealthy
  std::string last_check;      // what the last probe found
  uint64_t probes = 0;
  uint64_t probe_failures = 0;
  Circuit circuit = Circuit::closed;
  uint64_t ejections = 0;
  tg_backend_health counters{};  // the data path's, cumulative
  bool held_down = false;        // out of selection for its health

  nlohmann::json to_json() const;
};

class HealthMonitor {
 public:
  static constexpr auto kTick = std::chrono::milliseconds(100);
  // The probe of a half-open backend of a service without an active check.
  static HealthCheckSpec trial_probe(Protocol protocol);

  HealthMonitor(Controller& controller, AuditLog& audit);
  ~HealthMonitor();
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  void start();
  void stop();
  // As of the last tick.
  std::map<BackendKey, BackendHealth> snapshot() const;

 private:
  void run();
  // Makes the checker probe the services' active checks and the trial
  // probes, when either set changed.
  void sync_targets(Clock::time_point now);
  void tick(Clock::time_point now, const std::vector<ProbeOutcome>& outcomes);
  void record_circuit_change(const ServiceAddress& service, const OutlierChange& change);

  Controller& controller_;
  AuditLog& audit_;
  HealthChecker checker_;
  OutlierDetector outliers_;
  uint64_t seen_version_ = ~uint64_t{0};
  std::map<BackendKey, CheckTarget> checks_;  // the services' active checks, as of seen_version_
  std::set<BackendKey> trials_;               // half-open backends probed with trial_probe()
  bool targets_changed_ = false;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  mutable std::mutex snapshot_mutex_;
  std::map<BackendKey, BackendHealth> snapshot_;
};

}  // namespace tollgate
