// Loads the BPF data path from the skeleton compiled into the binary and
// attaches it to interfaces.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "abi.h"
#include "result.h"

struct tollgate_xdp;
struct tollgate_tc;

namespace tollgate {

// File descriptors of the data path's maps, owned by the DataPath.
struct MapFds {
  int config = -1;
  int services = -1;
  int vip_addresses = -1;
  int backends = -1;
  int maglev = -1;
  int flows = -1;
  int reverse_flows = -1;
  int service_stats = -1;
  int backend_stats = -1;
  int backend_health = -1;
  int backend_last_handshake = -1;
  int fib_cache = -1;
  int drops = -1;
  int new_flows = -1;
  int new_reverse = -1;
  int service_policy = -1;
  int acl_allow = -1;
  int acl_deny = -1;
  int source_buckets = -1;
  int conn_buckets = -1;
  int events = -1;
  int event_aggregates = -1;
  int event_stats = -1;
};

struct LoadOptions {
  uint32_t flow_capacity = TG_FLOWS_DEFAULT;  // entries in tg_flows and tg_reverse_flows
  // Entries in tg_new_flows and tg_new_reverse: flows seen once (a SYN).
  uint32_t new_flow_capacity = TG_NEW_FLOWS_DEFAULT;
  // Per-source token buckets held at once (LRU).
  uint32_t source_buckets = TG_SOURCE_BUCKETS_DEFAULT;
  // Where the maps are pinned (a directory on a BPF filesystem); empty: no
  // pins, the maps live as long as the programs and this process.
  std::string pin_dir;
  // Drop pinned maps instead of adopting them (their flows are lost).
  bool recreate = false;
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
  const MapFds& maps() const { return maps_; }
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
  MapFds maps_;
  bool adopted_ = false;
};

std::string_view xdp_mode_name(XdpMode mode);

}  // namespace tollgate
