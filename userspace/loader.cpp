#include "loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>

#include "log.h"
#include "tollgate_tc.skel.h"
#include "tollgate_xdp.skel.h"

namespace tollgate {
namespace {

// Handle and priority of our filter in the clsact ingress hook.
constexpr uint32_t kTcHandle = 0x7467;  // "tg"
constexpr uint32_t kTcPriority = 1;

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
    if (int err = bpf_map__reuse_fd(map, bpf_map__fd(twin)); err)
      return make_error("map reuse failed: {} [map = {}]", std::strerror(-err), bpf_map__name(map));
  }
  return {};
}

}  // namespace

std::string_view xdp_mode_name(XdpMode mode) { return mode == XdpMode::native ? "native" : "generic"; }

DataPath::DataPath(tollgate_xdp* xdp, tollgate_tc* tc) : xdp_(xdp), tc_(tc) {
  maps_.config = bpf_map__fd(xdp->maps.tg_config);
  maps_.services = bpf_map__fd(xdp->maps.tg_services);
  maps_.vip_addresses = bpf_map__fd(xdp->maps.tg_vip_addresses);
  maps_.backends = bpf_map__fd(xdp->maps.tg_backends);
  maps_.maglev = bpf_map__fd(xdp->maps.tg_maglev);
  maps_.flows = bpf_map__fd(xdp->maps.tg_flows);
  maps_.reverse_flows = bpf_map__fd(xdp->maps.tg_reverse_flows);
  maps_.service_stats = bpf_map__fd(xdp->maps.tg_service_stats);
  maps_.backend_stats = bpf_map__fd(xdp->maps.tg_backend_stats);
  maps_.drops = bpf_map__fd(xdp->maps.tg_drops);
}

DataPath::~DataPath() {
  tollgate_tc__destroy(tc_);
  tollgate_xdp__destroy(xdp_);
}

Result<std::unique_ptr<DataPath>> DataPath::load(const LoadOptions& options) {
  log::capture_libbpf();
  if (options.flow_capacity == 0) return make_error("flow capacity must be at least 1");

  tollgate_xdp* xdp = tollgate_xdp__open();
  if (!xdp) return make_error("BPF open failed: {} [object = tollgate_xdp]", std::strerror(errno));
  for (bpf_map* map : {xdp->maps.tg_flows, xdp->maps.tg_reverse_flows}) {
    if (int err = bpf_map__set_max_entries(map, options.flow_capacity); err) {
      tollgate_xdp__destroy(xdp);
      return make_error("map resize failed: {} [map = {}]", std::strerror(-err), bpf_map__name(map));
    }
  }
  if (int err = tollgate_xdp__load(xdp); err) {
    tollgate_xdp__destroy(xdp);
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
  return std::unique_ptr<DataPath>(new DataPath(xdp, tc));
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
    return make_error("XDP attach failed: {} [interface = {}, mode = {}]", std::strerror(-err), interface,
                      xdp_mode_name(mode));
  }
  return XdpAttachment{static_cast<int>(ifindex), interface, mode, xdp_program_id()};
}

Status DataPath::detach_xdp(const XdpAttachment& attachment) {
  uint32_t flags = attachment.mode == XdpMode::native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
  if (int err = bpf_xdp_detach(attachment.ifindex, flags, nullptr); err) {
    return make_error("XDP detach failed: {} [interface = {}]", std::strerror(-err), attachment.interface);
  }
  return {};
}

Result<TcAttachment> DataPath::attach_tc(const std::string& interface) {
  unsigned ifindex = if_nametoindex(interface.c_str());
  if (ifindex == 0) return make_error("no such interface '{}'", interface);
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = BPF_TC_INGRESS);
  if (int err = bpf_tc_hook_create(&hook); err && err != -EEXIST)
    return make_error("TC hook create failed: {} [interface = {}]", std::strerror(-err), interface);
  LIBBPF_OPTS(bpf_tc_opts, options, .prog_fd = tc_program_fd(), .flags = BPF_TC_F_REPLACE, .handle = kTcHandle,
              .priority = kTcPriority);
  if (int err = bpf_tc_attach(&hook, &options); err)
    return make_error("TC attach failed: {} [interface = {}, hook = ingress]", std::strerror(-err), interface);
  return TcAttachment{static_cast<int>(ifindex), interface, tc_program_id()};
}

Status DataPath::detach_tc(const TcAttachment& attachment) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = attachment.ifindex, .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, options, .handle = kTcHandle, .priority = kTcPriority);
  if (int err = bpf_tc_detach(&hook, &options); err && err != -ENOENT)
    return make_error("TC detach failed: {} [interface = {}]", std::strerror(-err), attachment.interface);
  return {};
}

}  // namespace tollgate
