#include "health.h"

#include "log.h"
#include "stats.h"

namespace tollgate {

nlohmann::json BackendHealth::to_json() const {
  return {{"check", check},
          {"last_check", last_check},
          {"probes", probes},
          {"probe_failures", probe_failures},
          {"circuit", circuit_name(circuit)},
          {"ejections", ejections},
          {"handshakes", counters.handshakes},
          {"syn_retransmits", counters.syn_retransmits},
          {"syn_resets", counters.syn_resets},
          {"retried", counters.retried},
          {"udp_replies", counters.udp_replies},
          {"udp_unreachable", counters.udp_unreachable},
          {"held_down", held_down}};
}

HealthMonitor::HealthMonitor(Controller& controller, AuditLog& audit) : controller_(controller), audit_(audit) {}

HealthMonitor::~HealthMonitor() { stop(); }

void HealthMonitor::start() {
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void HealthMonitor::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

std::map<BackendKey, BackendHealth> HealthMonitor::snapshot() const {
  std::lock_guard guard(snapshot_mutex_);
  return snapshot_;
}

void HealthMonitor::run() {
  Clock::time_point next_tick = Clock::now();
  std::vector<ProbeOutcome> outcomes;
  while (!stopping_) {
    sync_targets(Clock::now());
    auto finished = checker_.run_until(next_tick);
    outcomes.insert(outcomes.end(), std::make_move_iterator(finished.begin()), std::make_move_iterator(finished.end()));
    const Clock::time_point now = Clock::now();
    if (now < next_tick) continue;
    tick(now, outcomes);
    outcomes.clear();
    next_tick = std::max(next_tick + kTick, now);
  }
}

HealthCheckSpec HealthMonitor::trial_probe(Protocol protocol) {
  HealthCheckSpec probe;
  probe.type = protocol == Protocol::udp ? CheckType::udp : CheckType::tcp;
  probe.silence_passes = protocol == Protocol::udp;
  probe.interval = std::chrono::milliseconds(500);
  probe.timeout = std::chrono::milliseconds(500);
  probe.rise = 1;
  probe.fall = 1;
  return probe;
}

void HealthMonitor::sync_targets(Clock::time_point now) {
  {
    const auto snapshot = controller_.snapshot();
    if (snapshot->version != seen_version_) {
      seen_version_ = snapshot->version;
      checks_.clear();
      for (const auto& entry : snapshot->services.entries()) {
        const ServiceSpec& service = entry->desired;
        if (!service.health_check) continue;
        for (const auto& backend : service.backends) {
          CheckTarget target{backend.endpoint, *service.health_check};
          if (target.spec.port) target.endpoint.port = target.spec.port;
          checks_[{service.address, backend.endpoint}] = target;
        }
      }
      targets_changed_ = true;
    }
  }
  if (!targets_changed_) return;
  targets_changed_ = false;
  std::map<BackendKey, CheckTarget> targets = checks_;
  for (const BackendKey& key : trials_) targets.emplace(key, CheckTarget{key.second, trial_probe(key.first.protocol)});
  checker_.sync(targets, now);
}

void HealthMonitor::record_circuit_change(const ServiceAddress& service, const OutlierChange& change) {
  log::info("passive ejection: {} of {}: circuit {} -> {} ({})", change.key.second.to_string(), service.to_string(),
            circuit_name(change.before), circuit_name(change.after), change.reason);
  audit_.record({{"event", "backend_circuit"},
                 {"service", service.to_string()},
                 {"backend", change.key.second.to_string()},
                 {"before", circuit_name(change.before)},
                 {"after", circuit_name(change.after)},
                 {"reason", change.reason},
                 {"actor", {{"source", "outlier_detection"}}}});
}

void HealthMonitor::tick(Clock::time_point now, const std::vector<ProbeOutcome>& outcomes) {
  std::map<BackendKey, std::vector<const ProbeOutcome*>> probed;
  for (const auto& outcome : outcomes) probed[outcome.key].push_back(&outcome);

  // The state as of now; the health loop is the only one that holds
  // backends down, so what it finds held stays so until it says otherwise.
  const auto state = controller_.snapshot();
  const DataPathMaps& maps = controller_.maps();
  std::map<BackendKey, BackendHealth> snapshot;
  std::map<BackendKey, bool> present;
  std::set<BackendKey> trials;
  for (const auto& entry : state->services.entries()) {
    const ServiceSpec& service = entry->desired;
    // Without an active check, what the checker has for a backend is a
    // trial probe: it feeds the circuit only.
    const bool checked = service.health_check.has_value();
    std::vector<OutlierSample> samples;
    for (const auto& backend : service.backends) {
      const BackendKey key{service.address, backend.endpoint};
      present[key] = true;
      BackendHealth& health = snapshot[key];
      if (auto index = state->backend_index(service.address, backend.endpoint))
        if (auto counters = read_health(maps.backend_health, *index)) health.counters = *counters;
      const CheckStatus* check = checked ? checker_.status(key) : nullptr;
      if (check) {
        health.check = !check->checked ? "unchecked" : check->healthy ? "healthy" : "unhealthy";
        health.last_check = check->last;
        health.probes = check->probes;
        health.probe_failures = check->probe_failures;
        for (const ProbeOutcome* outcome : probed[key])
          if (outcome->changed)
            log::info("health check: {} of {} is {} ({})", key.second.to_string(), key.first.to_string(),
                      outcome->healthy ? "healthy" : "unhealthy", outcome->detail);
      }
      const bool check_failing = health.check == "unhealthy";
      // Selectable apart from this circuit: desired up and the check fine.
      samples.push_back({backend.endpoint, health.counters, backend.state == BackendState::up && !check_failing});
    }
    // TCP and UDP alike (outlier.h: what counts as a failure for each).
    // The probes that finished since the last tick first: a half-open
    // backend that failed one is open again before anything else looks.
    for (const auto& backend : service.backends) {
      const BackendKey key{service.address, backend.endpoint};
      for (const ProbeOutcome* outcome : probed[key])
        if (auto change = outliers_.note_probe(key, service.outlier_detection, outcome->ok, outcome->detail, now))
          record_circuit_change(service.address, *change);
    }
    for (const auto& change : outliers_.update(service.address, service.outlier_detection, samples, now))
      record_circuit_change(service.address, change);
    for (const auto& backend : service.backends) {
      const BackendKey key{service.address, backend.endpoint};
      BackendHealth& health = snapshot[key];
      if (const OutlierStatus* outlier = outliers_.status(key)) {
        health.circuit = outlier->circuit;
        health.ejections = outlier->ejections;
      }
      if (!checked && health.circuit == Circuit::half_open) trials.insert(key);
      const bool down = health.check == "unhealthy" || !circuit_selectable(health.circuit);
      const bool was_down = state->held_down.contains(key);
      health.held_down = down;
      if (down == was_down) continue;
      const CheckStatus* check = checker_.status(key);
      const std::string reason = health.check == "unhealthy" ? fmt::format("health check: {}", check ? check->last : "")
                                 : down ? fmt::format("passive ejection: circuit {}", circuit_name(health.circuit))
                                        : "healthy again";
      Status status = controller_.set_held_down(key, down);
      if (!status) {
        health.held_down = was_down;
        log::error("could not {} {} of {}: {}", down ? "take out" : "put back", backend.endpoint.to_string(),
                   service.address.to_string(), status.error().message);
      } else {
        log::info("{} of {} {} selection: {}", backend.endpoint.to_string(), service.address.to_string(),
                  down ? "taken out of" : "back in", reason);
      }
      audit_.record({{"event", "backend_health"},
                     {"service", service.address.to_string()},
                     {"backend", backend.endpoint.to_string()},
                     {"before", was_down ? "held_down" : "selectable"},
                     {"after", down ? "held_down" : "selectable"},
                     {"reason", reason},
                     {"result", status ? "ok" : "error"},
                     {"error", status ? "" : status.error().message},
                     {"actor", {{"source", "health"}}}});
    }
  }
  outliers_.retain(present);
  if (trials != trials_) {
    trials_ = std::move(trials);
    targets_changed_ = true;
  }
  std::lock_guard snapshot_guard(snapshot_mutex_);
  snapshot_ = std::move(snapshot);
}

}  // namespace tollgate
