#include "loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "kernel_probe.h"
#include "libbpf_log.h"
#include "tollgate_tc.skel.h"
#include "tollgate_xdp.skel.h"

namespace tollgate {
namespace {

// Handle and priority of our filter in the clsact ingress hook.
constexpr uint32_t kTcHandle = 0x7467;  // "tg"
constexpr uint32_t kTcPriority = 1;
// Kernel names of our programs (the SEC functions), to recognise them.
constexpr std::string_view kXdpProgramName = "tg_xdp_balancer";
constexpr std::string_view kTcProgramName = "tg_tc_reply";

bool is_our_program(uint32_t id, std::string_view name) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return false;
  bpf_prog_info info{};
  uint32_t length = sizeof(info);
  // The kernel keeps BPF_OBJ_NAME_LEN - 1 characters of a name.
  bool ours = bpf_obj_get_info_by_fd(fd, &info, &length) == 0 &&
              std::string_view(info.name) == name.substr(0, BPF_OBJ_NAME_LEN - 1);
  close(fd);
  return ours;
}

// The pin directory must be on a BPF filesystem: elsewhere a pin either
// fails or, worse, lives only as long as a private mount.
Status prepare_pin_dir(const std::string& pin_dir) {
  std::error_code error;
  std::filesystem::create_directories(pin_dir, error);
  struct statfs info {};
  if (error || statfs(pin_dir.c_str(), &info) != 0 || info.f_type != BPF_FS_MAGIC) {
    return make_error(
        "pin directory {} is not on a BPF filesystem{}; mount one (mount -t bpf bpf /sys/fs/bpf) or choose "
        "another --pin-dir",
        pin_dir, error ? " (" + error.message() + ")" : "");
  }
  return {};
}

// The ABI version in a pinned tg_config, 0 if no agent has written it yet.
Result<uint32_t> pinned_abi_version(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return make_error("cannot open pinned map {}: {}", path, std::strerror(errno));
  bpf_map_info info{};
  uint32_t length = sizeof(info);
  std::vector<uint8_t> value;
  uint32_t zero = 0;
  bool readable = bpf_obj_get_info_by_fd(fd, &info, &length) == 0 && info.value_size >= sizeof(uint32_t);
  if (readable) {
    value.resize(info.value_size);
    readable = bpf_map_lookup_elem(fd, &zero, value.data()) == 0;
  }
  close(fd);
  if (!readable) return make_error("cannot read pinned map {}", path);
  uint32_t version;
  std::memcpy(&version, value.data(), sizeof(version));  // tg_config.abi_version comes first in every version
  return version;
}

// The interface's driver as ethtool names it ("veth", "mlx5_core").
std::string interface_driver(const std::string& interface) {
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  ifreq request{};
  std::snprintf(request.ifr_name, sizeof(request.ifr_name), "%s", interface.c_str());
  request.ifr_data = reinterpret_cast<char*>(&info);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  bool known = fd >= 0 && ioctl(fd, SIOCETHTOOL, &request) == 0;
  if (fd >= 0) close(fd);
  return known ? std::string(info.driver) : "(unknown)";
}

uint32_t program_id(int program_fd) {
  bpf_prog_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(program_fd, &info, &length)) return 0;
  return info.id;
}

// The TC object declares the same maps (bpf/lib/maps.h): make it use the
// XDP object's, so both programs share one state.
Status share_maps(bpf_object* from, bpf_object* to) {
  bpf_map* map;
  bpf_object__for_each_map(map, to) {
    if (bpf_map__is_internal(map)) continue;  // .rodata/.bss are per object
    bpf_map* twin = bpf_object__find_map_by_name(from, bpf_map__name(map));
    if (!twin) continue;
    if (int err = bpf_map__reuse_fd(map, bpf_map__fd(twin)); err) return map_error(bpf_map__name(map), "reuse", -err);
  }
  return {};
}

}  // namespace

std::string_view xdp_mode_name(XdpMode mode) { return mode == XdpMode::native ? "native" : "generic"; }

std::vector<MapHandle> DataPathMaps::all() const {
#define TG_MAP_HANDLE(field, map_name) field,
  return {TG_DATAPATH_MAPS(TG_MAP_HANDLE)};
#undef TG_MAP_HANDLE
}

// The TC object uses the XDP object's maps (share_maps()): their fds are
// the XDP skeleton's.
DataPath::DataPath(tollgate_xdp* xdp, tollgate_tc* tc) : xdp_(xdp), tc_(tc) {
#define TG_MAP_FILL(field, map_name) maps_.field = MapHandle(bpf_map__fd(xdp->maps.map_name), #map_name);
  TG_DATAPATH_MAPS(TG_MAP_FILL)
#undef TG_MAP_FILL
}

DataPath::~DataPath() {
  tollgate_tc__destroy(tc_);
  tollgate_xdp__destroy(xdp_);
}

Result<std::unique_ptr<DataPath>> DataPath::load(const LoadOptions& options) {
  log::capture_libbpf();
  if (options.flow_capacity == 0) return make_error("flow capacity must be at least 1");
  if (options.overflow_capacity == 0) return make_error("overflow capacity must be at least 1");
  if (options.source_buckets == 0) return make_error("source bucket capacity must be at least 1");

  // A kernel without what the programs use is refused by name here, not
  // by a verifier log.
  if (auto status = require_kernel_features(probe_kernel_features(), kernel_release()); !status) return status.error();

  bool adopting = false;
  if (!options.pin_dir.empty()) {
    if (auto status = prepare_pin_dir(options.pin_dir); !status) return status.error();
    const std::string config_pin = options.pin_dir + "/tg_config";
    if (access(config_pin.c_str(), F_OK) == 0) {
      auto version = pinned_abi_version(config_pin);
      if (!version) return version.error();
      if (options.recreate) {
        log::warn("re-creating the maps pinned in {} as asked: their flows and counters are lost", options.pin_dir);
      } else if (*version != 0 && *version != TG_ABI_VERSION) {
        return make_error(
            "the maps pinned in {} have ABI version {}, this tollgated has {}; start with --recreate to drop them "
            "(established flows are lost) or run the matching tollgated",
            options.pin_dir, *version, TG_ABI_VERSION);
      }
      if (options.recreate) {
        if (auto status = remove_pins(options.pin_dir); !status) return status.error();
        if (auto status = prepare_pin_dir(options.pin_dir); !status) return status.error();
      } else {
        adopting = true;
      }
    }
  }

  tollgate_xdp* xdp = tollgate_xdp__open();
  if (!xdp) return make_error("BPF open failed: {} [object = tollgate_xdp]", std::strerror(errno));
  // The key of SYN-authentication cookies: new with every load (a
  // challenge in flight across a restart fails; the client's next SYN
  // gets a new one).
  uint32_t secret[2] = {};
  if (getrandom(secret, sizeof(secret), 0) != static_cast<ssize_t>(sizeof(secret))) {
    tollgate_xdp__destroy(xdp);
    return make_error("getrandom: {}", std::strerror(errno));
  }
  for (size_t i = 0; i < 2; ++i) xdp->rodata->tg_syn_secret[i] = secret[i];
  const std::pair<bpf_map*, uint32_t> sizes[] = {
      {xdp->maps.tg_flows, options.flow_capacity},
      {xdp->maps.tg_reverse_flows, options.flow_capacity},
      {xdp->maps.tg_overflow_flows, options.overflow_capacity},
      {xdp->maps.tg_source_buckets, options.source_buckets},
  };
  for (const auto& [map, entries] : sizes) {
    if (int err = bpf_map__set_max_entries(map, entries); err) {
      tollgate_xdp__destroy(xdp);
      return map_error(bpf_map__name(map), "resize", -err);
    }
  }
  if (!options.pin_dir.empty()) {
    // libbpf reuses a compatible pin and pins a new map where there is none.
    bpf_map* map;
    bpf_object__for_each_map(map, xdp->obj) {
      if (bpf_map__is_internal(map)) continue;
      std::string path = options.pin_dir + "/" + bpf_map__name(map);
      if (int err = bpf_map__set_pin_path(map, path.c_str()); err) {
        tollgate_xdp__destroy(xdp);
        return map_error(bpf_map__name(map), "pin path", -err);
      }
    }
  }
  if (int err = tollgate_xdp__load(xdp); err) {
    tollgate_xdp__destroy(xdp);
    if (adopting)
      return make_error(
          "BPF load failed: {} [object = tollgate_xdp]: the maps pinned in {} do not match this build (a different "
          "--flow-capacity, --overflow-capacity or --source-buckets?); start with --recreate to drop them (established "
          "flows are lost)",
          std::strerror(-err), options.pin_dir);
    return make_error("BPF load failed: {} [object = tollgate_xdp] (needs root; libbpf's log above says more)",
                      std::strerror(-err));
  }

  tollgate_tc* tc = tollgate_tc__open();
  if (!tc) {
    tollgate_xdp__destroy(xdp);
    return make_error("BPF open failed: {} [object = tollgate_tc]", std::strerror(errno));
  }
  if (auto status = share_maps(xdp->obj, tc->obj); !status) {
    tollgate_tc__destroy(tc);
    tollgate_xdp__destroy(xdp);
    return status.error();
  }
  if (int err = tollgate_tc__load(tc); err) {
    tollgate_tc__destroy(tc);
    tollgate_xdp__destroy(xdp);
    return make_error("BPF load failed: {} [object = tollgate_tc]", std::strerror(-err));
  }
  auto datapath = std::unique_ptr<DataPath>(new DataPath(xdp, tc));
  datapath->adopted_ = adopting;
  return datapath;
}

Status DataPath::remove_pins(const std::string& pin_dir) {
  struct statfs info {};
  if (statfs(pin_dir.c_str(), &info) != 0) return {};  // nothing there
  if (info.f_type != BPF_FS_MAGIC) return make_error("{} is not on a BPF filesystem; not removing it", pin_dir);
  std::error_code error;
  std::filesystem::remove_all(pin_dir, error);
  if (error) return make_error("cannot remove pins in {}: {}", pin_dir, error.message());
  return {};
}

int DataPath::xdp_program_fd() const { return bpf_program__fd(xdp_->progs.tg_xdp_balancer); }
uint32_t DataPath::xdp_program_id() const { return program_id(xdp_program_fd()); }
int DataPath::tc_program_fd() const { return bpf_program__fd(tc_->progs.tg_tc_reply); }
uint32_t DataPath::tc_program_id() const { return program_id(tc_program_fd()); }

Result<XdpAttachment> DataPath::attach_xdp(const std::string& interface, XdpMode mode) {
  unsigned ifindex = if_nametoindex(interface.c_str());
  if (ifindex == 0) return make_error("no such interface '{}'", interface);
  uint32_t flags = mode == XdpMode::native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
  if (int err = bpf_xdp_attach(static_cast<int>(ifindex), xdp_program_fd(), flags, nullptr); err) {
    std::string hint;
    if (mode == XdpMode::native && (err == -EOPNOTSUPP || err == -EINVAL))
      hint = fmt::format(
          ": driver {} has no native XDP on this kernel ({}); --generic runs it after the kernel "
          "allocates an skb, far slower",
          interface_driver(interface), kernel_release());
    return make_error("XDP attach failed: {} [interface = {}, mode = {}]{}", std::strerror(-err), interface,
                      xdp_mode_name(mode), hint);
  }
  return XdpAttachment{static_cast<int>(ifindex), interface, mode, xdp_program_id()};
}

Result<TcAttachment> DataPath::attach_tc(const std::string& interface) {
  unsigned ifindex = if_nametoindex(interface.c_str());
  if (ifindex == 0) return make_error("no such interface '{}'", interface);
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = BPF_TC_INGRESS);
  // A predecessor's clsact qdisc and filter are replaced in place (one
  // netlink change, no gap); the qdisc is created only when missing.
  LIBBPF_OPTS(bpf_tc_opts, existing, .handle = kTcHandle, .priority = kTcPriority);
  int queried;
  {
    log::LibbpfWarningsExpected no_qdisc_yet;  // a fresh interface has none: not a warning
    queried = bpf_tc_query(&hook, &existing);
  }
  if (queried != 0) {
    if (int err = bpf_tc_hook_create(&hook); err && err != -EEXIST)
      return make_error("TC hook create failed: {} [interface = {}]", std::strerror(-err), interface);
  }
  LIBBPF_OPTS(bpf_tc_opts, options, .prog_fd = tc_program_fd(), .flags = BPF_TC_F_REPLACE, .handle = kTcHandle,
              .priority = kTcPriority);
  if (int err = bpf_tc_attach(&hook, &options); err)
    return make_error("TC attach failed: {} [interface = {}, hook = ingress]", std::strerror(-err), interface);
  return TcAttachment{static_cast<int>(ifindex), interface, tc_program_id()};
}

Result<bool> DataPath::detach_xdp_by_name(const std::string& interface) {
  unsigned ifindex = if_nametoindex(interface.c_str());
  if (ifindex == 0) return make_error("no interface '{}' in this network namespace", interface);
  LIBBPF_OPTS(bpf_xdp_query_opts, query);
  if (int err = bpf_xdp_query(static_cast<int>(ifindex), 0, &query); err)
    return make_error("XDP query failed: {} [interface = {}]", std::strerror(-err), interface);
  if (query.prog_id == 0 || !is_our_program(query.prog_id, kXdpProgramName)) return false;
  uint32_t flags = query.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
  if (int err = bpf_xdp_detach(static_cast<int>(ifindex), flags, nullptr); err)
    return make_error("XDP detach failed: {} [interface = {}]", std::strerror(-err), interface);
  return true;
}

Result<bool> DataPath::detach_tc_by_name(const std::string& interface) {
  unsigned ifindex = if_nametoindex(interface.c_str());
  if (ifindex == 0) return make_error("no interface '{}' in this network namespace", interface);
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, query, .handle = kTcHandle, .priority = kTcPriority);
  int queried;
  {
    log::LibbpfWarningsExpected none_attached;  // nothing there is an answer, not a warning
    queried = bpf_tc_query(&hook, &query);
  }
  if (queried != 0 || !is_our_program(query.prog_id, kTcProgramName)) return false;
  LIBBPF_OPTS(bpf_tc_opts, options, .handle = kTcHandle, .priority = kTcPriority);
  if (int err = bpf_tc_detach(&hook, &options); err && err != -ENOENT)
    return make_error("TC detach failed: {} [interface = {}]", std::strerror(-err), interface);
  return true;
}

}  // namespace tollgate
