// Policy: who may reach a service (CIDR allow and deny lists, global and
// per service), how fast each source may send (token buckets), how fast a
// service takes new connections; and the settings of the events the data
// path reports. The model and its checks (datapath/policy_maps.h writes it
// to the maps).
#pragma once

#include <chrono>
#include <compare>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "address.h"
#include "result.h"

namespace tollgate {

// "198.18.0.0/24", "2001:db8::/32"; a bare address is a host (/32, /128).
struct Cidr {
  IpAddress address;
  uint8_t prefix = 0;

  // Host bits must be zero: "198.18.0.1/24" is an error that says so.
  static Result<Cidr> parse(std::string_view text);
  std::string to_string() const;
  auto operator<=>(const Cidr&) const = default;
};

// Deny wins; a non-empty allow list admits only what it lists.
struct AccessLists {
  std::vector<Cidr> allow;
  std::vector<Cidr> deny;

  bool empty() const { return allow.empty() && deny.empty(); }
  bool operator==(const AccessLists&) const = default;
};

inline constexpr size_t kMaxListEntries = 4096;  // per list

// Per source (masked to a prefix), per service. 0 rate: that limit is off.
struct RateLimitSpec {
  uint64_t packets_per_second = 0;
  uint64_t burst_packets = 0;  // default: a tenth of a second's worth, at least 1
  uint64_t bytes_per_second = 0;
  uint64_t burst_bytes = 0;  // default: a tenth of a second's worth, at least 1514
  uint8_t ipv4_prefix = 32;
  uint8_t ipv6_prefix = 64;

  bool operator==(const RateLimitSpec&) const = default;
};

// New connections per second to a service, all sources together.
struct ConnectionLimitSpec {
  uint64_t per_second = 0;
  uint64_t burst = 0;  // default: a tenth of a second's worth, at least 1

  bool operator==(const ConnectionLimitSpec&) const = default;
};

struct ServicePolicy {
  AccessLists access;
  std::optional<RateLimitSpec> rate_limit;
  std::optional<ConnectionLimitSpec> new_connections;
  // SYN authentication: a new source's first SYN is answered by the
  // gateway with a challenge its RST must return (IPv4); only proven
  // sources reach the backends.
  bool syn_authentication = false;

  bool empty() const { return access.empty() && !rate_limit && !new_connections && !syn_authentication; }
  bool operator==(const ServicePolicy&) const = default;
};

// Events: at most one per (kind, service, source) per interval, and at
// most per_second in all.
struct EventSettings {
  std::chrono::milliseconds interval{1000};
  uint32_t per_second = 200;

  bool operator==(const EventSettings&) const = default;
};

// The checks, with defaults filled in; errors name the field under `path`.
Result<RateLimitSpec> complete_rate_limit(RateLimitSpec spec, bool burst_packets_set, bool burst_bytes_set,
                                          const std::string& path);
Result<ConnectionLimitSpec> complete_connection_limit(ConnectionLimitSpec spec, bool burst_set,
                                                      const std::string& path);
// Lists of one family are fine; duplicates and too many entries are not.
Status validate_access_lists(const AccessLists& lists, const std::string& path);

}  // namespace tollgate
