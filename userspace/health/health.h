// The agent's health loop: one thread running the active checks
// (HealthChecker) and, every tick, the passive ejection (OutlierDetector)
// on the data path's per-backend counters. A backend that either finds
// failing is held down through the Controller (out of selection, its flows
// move); it is released when both agree it is fine. Every change is logged
// and audited.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
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
  void sync_targets(Clock::time_point now);
  void tick(Clock::time_point now, const std::vector<ProbeOutcome>& outcomes);

  Controller& controller_;
  AuditLog& audit_;
  HealthChecker checker_;
  OutlierDetector outliers_;
  uint64_t seen_version_ = ~uint64_t{0};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  mutable std::mutex snapshot_mutex_;
  std::map<BackendKey, BackendHealth> snapshot_;
};

}  // namespace tollgate
