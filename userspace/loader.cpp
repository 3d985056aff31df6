#include "loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>

#include "log.h"
#include "tollgate_xdp.skel.h"

namespace tollgate {

std::string_view xdp_mode_name(XdpMode mode) { return mode == XdpMode::native ? "native" : "generic"; }

DataPath::DataPath(tollgate_xdp* skeleton) : skeleton_(skeleton) {
  maps_.config = bpf_map__fd(skeleton->maps.tg_config);
  maps_.services = bpf_map__fd(skeleton->maps.tg_services);
  maps_.vip_addresses = bpf_map__fd(skeleton->maps.tg_vip_addresses);
  maps_.backends = bpf_map__fd(skeleton->maps.tg_backends);
  maps_.maglev = bpf_map__fd(skeleton->maps.tg_maglev);
  maps_.flows = bpf_map__fd(skeleton->maps.tg_flows);
  maps_.service_stats = bpf_map__fd(skeleton->maps.tg_service_stats);
  maps_.backend_stats = bpf_map__fd(skeleton->maps.tg_backend_stats);
  maps_.drops = bpf_map__fd(skeleton->maps.tg_drops);
}

DataPath::~DataPath() { tollgate_xdp__destroy(skeleton_); }

Result<std::unique_ptr<DataPath>> DataPath::load(const LoadOptions& options) {
  log::capture_libbpf();
  tollgate_xdp* skeleton = tollgate_xdp__open();
  if (!skeleton) return make_error("BPF open failed: {} [object = tollgate_xdp]", std::strerror(errno));

  if (options.flow_capacity == 0) {
    tollgate_xdp__destroy(skeleton);
    return make_error("flow capacity must be at least 1");
  }
  if (int err = bpf_map__set_max_entries(skeleton->maps.tg_flows, options.flow_capacity); err) {
    tollgate_xdp__destroy(skeleton);
    return make_error("map resize failed: {} [map = tg_flows]", std::strerror(-err));
  }
  if (int err = tollgate_xdp__load(skeleton); err) {
    tollgate_xdp__destroy(skeleton);
    return make_error("BPF load failed: {} [object = tollgate_xdp] (run as root; see libbpf's log above)",
                      std::strerror(-err));
  }
  return std::unique_ptr<DataPath>(new DataPath(skeleton));
}

int DataPath::xdp_program_fd() const { return bpf_program__fd(skeleton_->progs.tg_xdp_balancer); }

uint32_t DataPath::xdp_program_id() const {
  bpf_prog_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(xdp_program_fd(), &info, &length)) return 0;
  return info.id;
}

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

}  // namespace tollgate
