// Passive ejection: a circuit breaker per backend, fed with the data
// path's cumulative connection counters (tg_backend_health) and with the
// agent's probes. Pure logic on a given clock, so that tests control time.
// A failure: a SYN sent again (no answer) or answered with RST, an ICMP
// port unreachable from the backend about a UDP flow. A success: a
// handshake completed, a UDP datagram back.
//
//   closed    --(failures >= min_failures and >= failure_percent of the
//                attempts in the window, or consecutive_failures with no
//                success between)-->                          open
//   open      --(ejection time over)-->                      half_open
//   half_open --(half_open_successes probes in a row)-->     closed
//   half_open --(a failed probe or connection)--> open, for twice as long (up to the max)
//
// Open and half-open are both out of selection: no client connection is
// sent to a backend to find out whether it is back. The agent probes a
// half-open backend (HealthMonitor: with the service's active check, or a
// trial probe of its own) and lets clients in only once it answers.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "abi.h"
#include "health_check.h"

namespace tollgate {

enum class Circuit : uint8_t { closed, open, half_open };
std::string_view circuit_name(Circuit circuit);
// Whether a backend in this state takes new client flows: only when closed.
constexpr bool circuit_selectable(Circuit circuit) { return circuit == Circuit::closed; }

struct OutlierStatus {
  Circuit circuit = Circuit::closed;
  uint64_t ejections = 0;            // times opened
  uint32_t consecutive = 0;          // ejections since the circuit last closed
  uint32_t half_open_successes = 0;  // probes in a row, this half-open period
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
  // A probe of the backend finished at `now`. Only a half-open circuit
  // moves: a failure opens it again at once, for twice as long as the last
  // time (up to the max); half_open_successes successes in a row close it.
  std::optional<OutlierChange> note_probe(const BackendKey& key, const OutlierSpec& spec, bool ok,
                                          std::string_view detail, Clock::time_point now);
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

  // Opens a half-open circuit again; returns for how long.
  static std::chrono::milliseconds reopen(OutlierStatus& status, const OutlierSpec& spec, Clock::time_point now);

  std::map<BackendKey, Backend> backends_;
};

}  // namespace tollgate
