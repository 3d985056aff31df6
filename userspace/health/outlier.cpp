#include "outlier.h"

#include <algorithm>

namespace tollgate {
namespace {

uint64_t failures_of(const tg_backend_health& health) { return health.syn_retransmits + health.syn_resets; }

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
    const bool open = it != backends_.end() && it->second.status.circuit == Circuit::open;
    if (open) ++ejected;
    if (sample.selectable && !open) ++selectable;
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
      successes = delta(sample.totals.handshakes, backend.last.handshakes);
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
        change(Circuit::half_open, "ejection time over: letting flows in again");
        break;
      case Circuit::half_open: {
        if (failures > 0) {
          ++status.ejections;
          ++status.consecutive;
          auto duration = spec.ejection;
          for (uint32_t i = 1; i < status.consecutive && duration < spec.max_ejection; ++i) duration *= 2;
          duration = std::min(duration, spec.max_ejection);
          status.open_until = now + duration;
          change(Circuit::open, fmt::format("{} connection attempt(s) failed while half-open; ejected for {} ms",
                                            failures, duration.count()));
          break;
        }
        status.half_open_successes += static_cast<uint32_t>(std::min<uint64_t>(successes, 1u << 30));
        if (status.half_open_successes >= spec.half_open_successes) {
          status.consecutive = 0;
          backend.window.clear();
          change(Circuit::closed,
                 fmt::format("{} successful connection(s) or probe(s) while half-open", status.half_open_successes));
        }
        break;
      }
    }
  }
  return changes;
}

void OutlierDetector::note_probe_success(const BackendKey& key) {
  auto it = backends_.find(key);
  if (it != backends_.end() && it->second.status.circuit == Circuit::half_open) ++it->second.status.half_open_successes;
}

void OutlierDetector::retain(const std::map<BackendKey, bool>& keep) {
  std::erase_if(backends_, [&](const auto& entry) { return !keep.contains(entry.first); });
}

const OutlierStatus* OutlierDetector::status(const BackendKey& key) const {
  auto it = backends_.find(key);
  return it == backends_.end() ? nullptr : &it->second.status;
}

}  // namespace tollgate
