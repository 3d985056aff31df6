#include "outlier.h"

#include <algorithm>

namespace tollgate {
namespace {

// TCP: a SYN unanswered or reset fails, a handshake succeeds. UDP: a port
// unreachable from the backend fails, an answer from it succeeds.
uint64_t failures_of(const tg_backend_health& health) {
  return health.syn_retransmits + health.syn_resets + health.udp_unreachable;
}
uint64_t successes_of(const tg_backend_health& health) { return health.handshakes + health.udp_replies; }

uint64_t delta(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

}  // namespace

std::string_view circuit_name(Circuit circuit) {
  switch (circuit) {
    case Circuit::closed: return "closed";
    case Circuit::open: return "open";
    case Circuit::half_open: return "half_open";
  }
  return "?";
}

std::vector<OutlierChange> OutlierDetector::update(const ServiceAddress& service, const OutlierSpec& spec,
                                                   const std::vector<OutlierSample>& samples, Clock::time_point now) {
  std::vector<OutlierChange> changes;
  size_t ejected = 0, selectable = 0;
  for (const auto& sample : samples) {
    auto it = backends_.find({service, sample.backend});
    const bool ejected_now = it != backends_.end() && !circuit_selectable(it->second.status.circuit);
    if (ejected_now) ++ejected;
    if (sample.selectable && !ejected_now) ++selectable;
  }
  const size_t max_ejected = std::max<size_t>(1, samples.size() * spec.max_ejected_percent / 100);

  for (const auto& sample : samples) {
    const BackendKey key{service, sample.backend};
    Backend& backend = backends_[key];
    OutlierStatus& status = backend.status;
    const Circuit before = status.circuit;
    auto change = [&](Circuit after, std::string reason) {
      status.circuit = after;
      changes.push_back({key, before, after, std::move(reason)});
    };

    uint64_t failures = 0, successes = 0;
    if (backend.seen) {
      failures = delta(failures_of(sample.totals), failures_of(backend.last));
      successes = delta(successes_of(sample.totals), successes_of(backend.last));
    }
    backend.seen = true;
    backend.last = sample.totals;

    if (!spec.enabled) {
      backend.window.clear();
      status.window_failures = status.window_successes = 0;
      if (before != Circuit::closed) change(Circuit::closed, "outlier detection disabled");
      continue;
    }

    switch (status.circuit) {
      case Circuit::closed: {
        if (failures || successes) backend.window.push_back({now, failures, successes});
        // Within one tick the order is unknown: a success counts as last.
        status.consecutive_failures = successes ? 0 : status.consecutive_failures + failures;
        while (!backend.window.empty() && backend.window.front().when + spec.window <= now) backend.window.pop_front();
        status.window_failures = status.window_successes = 0;
        for (const auto& entry : backend.window) {
          status.window_failures += entry.failures;
          status.window_successes += entry.successes;
        }
        const uint64_t attempts = status.window_failures + status.window_successes;
        const bool in_a_row = status.consecutive_failures >= spec.consecutive_failures;
        const bool failing = in_a_row || (status.window_failures >= spec.min_failures &&
                                          status.window_failures * 100 >= uint64_t{spec.failure_percent} * attempts);
        // Never the last selectable backend, never more than the service allows.
        if (!failing || ejected >= max_ejected || (sample.selectable && selectable <= 1)) break;
        const std::string reason =
            in_a_row ? fmt::format("{} connection attempts in a row failed", status.consecutive_failures)
                     : fmt::format("{} of {} connection attempts failed in the last {} ms", status.window_failures,
                                   attempts, spec.window.count());
        ++ejected;
        if (sample.selectable) --selectable;
        ++status.ejections;
        status.consecutive = 1;
        status.open_until = now + spec.ejection;
        status.consecutive_failures = 0;
        backend.window.clear();
        change(Circuit::open, reason);
        break;
      }
      case Circuit::open:
        if (now < status.open_until) break;
        status.half_open_successes = 0;
        change(Circuit::half_open, "ejection time over: probing before letting flows in");
        break;
      case Circuit::half_open:
        // Out of selection: the probes decide (note_probe). A connection
        // that fails all the same (one that was on its way) opens it again.
        if (failures > 0) {
          const auto duration = reopen(status, spec, now);
          change(Circuit::open, fmt::format("{} connection attempt(s) failed while half-open; ejected for {} ms",
                                            failures, duration.count()));
        }
        break;
    }
  }
  return changes;
}

std::optional<OutlierChange> OutlierDetector::note_probe(const BackendKey& key, const OutlierSpec& spec, bool ok,
                                                         std::string_view detail, Clock::time_point now) {
  auto it = backends_.find(key);
  if (!spec.enabled || it == backends_.end() || it->second.status.circuit != Circuit::half_open) return std::nullopt;
  OutlierStatus& status = it->second.status;
  if (!ok) {
    const auto duration = reopen(status, spec, now);
    return OutlierChange{key, Circuit::half_open, Circuit::open,
                         fmt::format("probe failed while half-open ({}); ejected for {} ms", detail, duration.count())};
  }
  if (++status.half_open_successes < spec.half_open_successes) return std::nullopt;
  status.circuit = Circuit::closed;
  status.consecutive = 0;
  status.consecutive_failures = 0;
  it->second.window.clear();
  return OutlierChange{key, Circuit::half_open, Circuit::closed,
                       fmt::format("{} probe(s) in a row succeeded while half-open", status.half_open_successes)};
}

std::chrono::milliseconds OutlierDetector::reopen(OutlierStatus& status, const OutlierSpec& spec,
                                                  Clock::time_point now) {
  ++status.ejections;
  ++status.consecutive;
  auto duration = spec.ejection;
  for (uint32_t i = 1; i < status.consecutive && duration < spec.max_ejection; ++i) duration *= 2;
  duration = std::min(duration, spec.max_ejection);
  status.circuit = Circuit::open;
  status.open_until = now + duration;
  status.half_open_successes = 0;
  return duration;
}

void OutlierDetector::retain(const std::map<BackendKey, bool>& keep) {
  std::erase_if(backends_, [&](const auto& entry) { return !keep.contains(entry.first); });
}

const OutlierStatus* OutlierDetector::status(const BackendKey& key) const {
  auto it = backends_.find(key);
  return it == backends_.end() ? nullptr : &it->second.status;
}

}  // namespace tollgate
