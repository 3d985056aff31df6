// What a service asks of backend health: active checks (probes from the
// agent) and passive ejection (a circuit breaker fed by the data path's
// per-backend connection counters). Part of a service's configuration.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tollgate {

enum class CheckType : uint8_t { tcp, http, udp };

struct HealthCheckSpec {
  CheckType type = CheckType::tcp;
  std::chrono::milliseconds interval{1000};
  std::chrono::milliseconds timeout{500};  // at most the interval
  uint32_t rise = 2;                       // successes in a row to come back
  uint32_t fall = 3;                       // failures in a row to be taken out
  uint16_t port = 0;                       // 0: the backend's own port
  std::string path = "/";                  // http: the request path
  // http: accepted status codes, as inclusive ranges.
  std::vector<std::pair<uint16_t, uint16_t>> expect_status{{200, 399}};
  std::string payload = "ping";  // udp: the datagram sent
  std::string expect;            // udp: the answer must contain it (empty: any answer)
  // udp: no answer within the timeout passes, only a refusal (ICMP port
  // unreachable) fails. The agent's own trial probe of a UDP service's
  // circuit; not in the configuration.
  bool silence_passes = false;

  bool operator==(const HealthCheckSpec&) const = default;
};

// Passive ejection: a backend whose recent connection attempts fail is
// taken out of selection for a while, then probed half-open (still out of
// selection): a few successful probes close the circuit and let clients
// back in, one failed probe opens it again for longer.
struct OutlierSpec {
  bool enabled = true;
  uint32_t failure_percent = 50;  // of attempts in the window, to eject
  uint32_t min_failures = 5;      // fewer failures than this never eject
  // Failures with no success between them that eject whatever the ratio
  // (a backend that just died, after a long healthy window).
  uint32_t consecutive_failures = 5;
  std::chrono::milliseconds window{10000};
  std::chrono::milliseconds ejection{3000};       // first ejection; doubles each time
  std::chrono::milliseconds max_ejection{60000};  // the doubling stops here
  uint32_t half_open_successes = 3;               // probes in a row to close
  uint32_t max_ejected_percent = 50;              // of a service's backends (at least one)

  bool operator==(const OutlierSpec&) const = default;
};

std::string_view check_type_name(CheckType type);

}  // namespace tollgate
