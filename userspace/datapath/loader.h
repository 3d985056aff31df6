// Loads the BPF data path from the skeleton compiled into the binary and
// attaches it to interfaces.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "abi.h"
#include "map_handle.h"
#include "result.h"

struct tollgate_xdp;
struct tollgate_tc;

namespace tollgate {

// Every map of the data path (bpf/lib/maps.h): X(field, BPF map name). The
// one list the DataPathMaps fields, the loader's fill-in from the skeleton
// and the walks over every map come from; a unit test holds it to the BPF
// objects.
#define TG_DATAPATH_MAPS(X)                            \
  X(config, tg_config)                                 \
  X(services, tg_services)                             \
  X(vip_addresses, tg_vip_addresses)                   \
  X(vip_filter, tg_vip_filter)                         \
  X(backend_endpoints, tg_backend_endpoints)           \
  X(backends, tg_backends)                             \
  X(maglev, tg_maglev)                                 \
  X(service_cursors, tg_service_cursors)               \
  X(backend_active, tg_backend_active)                 \
  X(backend_recent, tg_backend_recent)                 \
  X(flows, tg_flows)                                   \
  X(reverse_flows, tg_reverse_flows)                   \
  X(overflow_flows, tg_overflow_flows)                 \
  X(fragments, tg_fragments)                           \
  X(service_stats, tg_service_stats)                   \
  X(backend_stats, tg_backend_stats)                   \
  X(backend_health, tg_backend_health)                 \
  X(backend_last_handshake, tg_backend_last_handshake) \
  X(fib_cache, tg_fib_cache)                           \
  X(reply_hops, tg_reply_hops)                         \
  X(verified_sources, tg_verified_sources)             \
  X(drops, tg_drops)                                   \
  X(service_policy, tg_service_policy)                 \
  X(acl_allow, tg_acl_allow)                           \
  X(acl_deny, tg_acl_deny)                             \
  X(source_buckets, tg_source_buckets)                 \
  X(conn_buckets, tg_conn_buckets)                     \
  X(events, tg_events)                                 \
  X(event_aggregates, tg_event_aggregates)             \
  X(event_stats, tg_event_stats)                       \
  X(event_budget, tg_event_budget)                     \
  X(icmp_budget, tg_icmp_budget)

// The data path's maps, owned by the DataPath. A default-made one has the
// names and no fds (-1): a test without a kernel.
struct DataPathMaps {
#define TG_MAP_FIELD(field, map_name) MapHandle field{-1, #map_name};
  TG_DATAPATH_MAPS(TG_MAP_FIELD)
#undef TG_MAP_FIELD

  // Every map, in the list's order.
  std::vector<MapHandle> all() const;
};

// The BPF names of the maps in TG_DATAPATH_MAPS, in its order.
inline constexpr const char* kDataPathMapNames[] = {
#define TG_MAP_NAME(field, map_name) #map_name,
    TG_DATAPATH_MAPS(TG_MAP_NAME)
#undef TG_MAP_NAME
};

struct LoadOptions {
  // Entries in tg_flows, and in tg_reverse_flows (flows of services of every port).
  uint32_t flow_capacity = TG_FLOWS_DEFAULT;
  // Entries in tg_overflow_flows: flows seen once (a SYN).
  uint32_t overflow_capacity = TG_OVERFLOW_FLOWS_DEFAULT;
  // Per-source token buckets held at once (LRU).
  uint32_t source_buckets = TG_SOURCE_BUCKETS_DEFAULT;
  // Where the maps are pinned (a directory on a BPF filesystem); empty: no
  // pins, the maps live as long as the programs and this process.
  std::string pin_dir;
  // Drop pinned maps instead of adopting them (their flows are lost).
  bool recreate = false;

  bool operator==(const LoadOptions&) const = default;
};

inline constexpr const char* kDefaultPinDir = "/sys/fs/bpf/tollgate";

enum class XdpMode { native, generic };

struct XdpAttachment {
  int ifindex = 0;
  std::string interface;
  XdpMode mode = XdpMode::native;
  uint32_t program_id = 0;
};

struct TcAttachment {
  int ifindex = 0;
  std::string interface;
  uint32_t program_id = 0;
};

// Both programs of the data path: XDP (client side, requests) and TC
// (backend side, replies), sharing one set of maps.
class DataPath {
 public:
  static Result<std::unique_ptr<DataPath>> load(const LoadOptions& options);
  ~DataPath();
  DataPath(const DataPath&) = delete;
  DataPath& operator=(const DataPath&) = delete;

  int xdp_program_fd() const;
  uint32_t xdp_program_id() const;
  int tc_program_fd() const;
  uint32_t tc_program_id() const;
  const DataPathMaps& maps() const { return maps_; }
  // True when the maps were pinned by an earlier agent and adopted: they
  // hold its services, backends, tables, flows and counters.
  bool adopted() const { return adopted_; }

  // Removes the pinned maps under `pin_dir` (for an uninstall, or before a
  // re-create). A directory that does not exist is not an error.
  static Status remove_pins(const std::string& pin_dir);

  // Attaches the XDP program to `interface`; replaces a program already
  // there. Generic mode only when asked for.
  Result<XdpAttachment> attach_xdp(const std::string& interface, XdpMode mode);
  // Attaches the TC reply program at ingress of `interface` (clsact).
  Result<TcAttachment> attach_tc(const std::string& interface);
  // Detach without a loaded DataPath (an uninstall): only programs of ours
  // are removed. true: one was removed; false: none of ours was there. An
  // interface missing from this network namespace is an error.
  static Result<bool> detach_xdp_by_name(const std::string& interface);
  static Result<bool> detach_tc_by_name(const std::string& interface);

 private:
  DataPath(tollgate_xdp* xdp, tollgate_tc* tc);

  tollgate_xdp* xdp_;
  tollgate_tc* tc_;
  DataPathMaps maps_;
  bool adopted_ = false;
};

std::string_view xdp_mode_name(XdpMode mode);

}  // namespace tollgate
