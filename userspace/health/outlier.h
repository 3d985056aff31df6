// Passive ejection: a circuit breaker per backend, fed with the data
// path's cumulative connection counters (tg_backend_health). Pure logic on
// a given clock, so that tests control time.
//
//   closed    --(failures >= min_failures and >= failure_percent of the
//                attempts in the window, or consecutive_failures with no
//                success between)-->                          open
//   open      --(ejection time over)-->                      half_open
//   half_open --(half_open_successes handshakes or probes)--> closed
//   half_open --(any failure)--> open, for twice as long (up to the max)
//
// Open means out of selection; half-open backends take new flows again.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "abi.h"
#include "health_check.h"

namespace tollgate {

enum class Circuit : uint8_t { closed, open, half_open };
std::string_view circuit_name(Circuit circuit);

struct OutlierStatus {
  Circuit circuit = Circuit::closed;
  uint64_t ejections = 0;    // times opened
  uint32_t consecutive = 0;  // ejections since the circuit last closed
  uint32_t half_open_successes = 0;
  Clock::time_point open_until{};
  uint64_t window_failures = 0;  // closed: in the window
  uint64_t window_successes = 0;
  uint64_t consecutive_failures = 0;  // since the last success
};

struct OutlierChange {
  BackendKey key;
  Circuit before;
  Circuit after;
  std::string reason;
};

// One backend of a service as the data path counts it.
struct OutlierSample {
  Endpoint backend;
  tg_backend_health totals;  // cumulative, summed over CPUs
  bool selectable = true;    // up now, not held down for another reason
};

class OutlierDetector {
 public:
  // Feeds one service's counters at `now`; returns the circuits that moved.
  std::vector<OutlierChange> update(const ServiceAddress& service, const OutlierSpec& spec,
                                    const std::vector<OutlierSample>& samples, Clock::time_point now);
  // An active probe of a half-open backend succeeded.
  void note_probe_success(const BackendKey& key);
  // Forgets backends not in `keep`.
  void retain(const std::map<BackendKey, bool>& keep);
  const OutlierStatus* status(const BackendKey& key) const;

 private:
  struct Window {
    Clock::time_point when;
    uint64_t failures;
    uint64_t successes;
  };
  struct Backend {
    OutlierStatus status;
    bool seen = false;
    tg_backend_health last{};
    std::deque<Window> window;
  };

  std::map<BackendKey, Backend> backends_;
};

}  // namespace tollgate
