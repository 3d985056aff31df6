#include "abi.h"

namespace tollgate {

std::string_view drop_reason_name(tg_drop_reason reason) {
  switch (reason) {
    case TG_DROP_ETH_TRUNCATED: return "eth_truncated";
    case TG_DROP_VLAN_TOO_DEEP: return "vlan_too_deep";
    case TG_DROP_IPV4_TRUNCATED: return "ipv4_truncated";
    case TG_DROP_IPV4_BAD_IHL: return "ipv4_bad_ihl";
    case TG_DROP_IPV4_OPTIONS: return "ipv4_options";
    case TG_DROP_IPV4_FRAGMENT: return "ipv4_fragment";
    case TG_DROP_IPV6_TRUNCATED: return "ipv6_truncated";
    case TG_DROP_IPV6_EXT_HEADER: return "ipv6_ext_header";
    case TG_DROP_IPV6_FRAGMENT: return "ipv6_fragment";
    case TG_DROP_TCP_TRUNCATED: return "tcp_truncated";
    case TG_DROP_UDP_TRUNCATED: return "udp_truncated";
    case TG_DROP_UDP6_ZERO_CHECKSUM: return "udp6_zero_checksum";
    case TG_DROP_NO_BACKEND: return "no_backend";
    case TG_DROP_TTL_EXCEEDED: return "ttl_exceeded";
    case TG_DROP_FIB_FAILED: return "fib_failed";
    case TG_DROP_FRAME_TOO_BIG: return "frame_too_big";
    case TG_DROP_INTERNAL: return "internal";
    case TG_DROP_DENIED: return "denied";
    case TG_DROP_NOT_ALLOWED: return "not_allowed";
    case TG_DROP_RATE_LIMITED: return "rate_limited";
    case TG_DROP_CONN_LIMITED: return "connection_limited";
    case TG_DROP_SYN_CHALLENGED: return "syn_challenged";
    case TG_DROP_SYN_PROOF: return "syn_proof";
    case TG_DROP_SYN_UNPROVEN: return "syn_unproven";
    case TG_DROP_REASON_COUNT: break;
  }
  return "unknown";
}

std::string_view event_kind_name(tg_event_kind kind) {
  switch (kind) {
    case TG_EVENT_DENIED: return "denied";
    case TG_EVENT_RATE_LIMITED: return "rate_limited";
    case TG_EVENT_CONN_LIMITED: return "connection_limited";
    case TG_EVENT_FLOW_MOVED: return "flow_moved";
    case TG_EVENT_FLOW_UNTRACKED: return "flow_untracked";
    case TG_EVENT_KIND_COUNT: break;
  }
  return "unknown";
}

}  // namespace tollgate
