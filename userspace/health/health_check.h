// Active health checks: every probe of every backend runs from one thread
// on one epoll set, non-blocking, with one timer queue; no thread per
// backend. Probes go straight to the backend's address (or its check
// port), never through a service address.
//
// Each target is healthy until `fall` probes in a row fail, then unhealthy
// until `rise` probes in a row succeed. Probes of a target start on a fixed
// schedule (every interval, from a per-target offset so that many targets
// do not fire at once).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "address.h"
#include "health_spec.h"
#include "spec.h"

namespace tollgate {

using Clock = std::chrono::steady_clock;

struct CheckTarget {
  Endpoint endpoint;  // what is probed: the backend, or its check port
  HealthCheckSpec spec;

  bool operator==(const CheckTarget&) const = default;
};

struct CheckStatus {
  bool healthy = true;
  bool checked = false;    // a probe has finished
  uint32_t successes = 0;  // in a row
  uint32_t failures = 0;   // in a row
  uint64_t probes = 0;
  uint64_t probe_failures = 0;
  std::string last;  // what the last probe found ("ok", "connect: Connection refused", "HTTP 503", ...)
};

// One finished probe.
struct ProbeOutcome {
  BackendKey key;
  bool ok = false;
  bool changed = false;  // the target's health flipped with it
  bool healthy = true;   // health after it
  std::string detail;
};

class HealthChecker {
 public:
  HealthChecker();
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Makes `targets` the set probed. A kept target with the same spec keeps
  // its health and schedule; a new or changed one starts healthy.
  void sync(const std::map<BackendKey, CheckTarget>& targets, Clock::time_point now);
  // Runs due probes and waits for their events until `until`; returns the
  // probes that finished.
  std::vector<ProbeOutcome> run_until(Clock::time_point until);
  const CheckStatus* status(const BackendKey& key) const;
  size_t size() const { return probes_.size(); }

 private:
  struct Probe;
  void start(Probe& probe, Clock::time_point now, std::vector<ProbeOutcome>& out);
  void on_event(Probe& probe, uint32_t events, std::vector<ProbeOutcome>& out);
  void finish(Probe& probe, bool ok, std::string detail, std::vector<ProbeOutcome>& out);
  void close_socket(Probe& probe);
  void arm(Probe& probe, Clock::time_point when);

  int epoll_fd_ = -1;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Probe> probes_;
  std::map<BackendKey, uint64_t> ids_;
  // (when, (probe id, arm sequence)); a stale sequence is ignored.
  std::multimap<Clock::time_point, std::pair<uint64_t, uint64_t>> timers_;
};

}  // namespace tollgate
