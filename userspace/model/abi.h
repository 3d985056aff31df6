// The C++ side of maps/tollgate_abi.h: size checks and names.
#pragma once

extern "C" {
#include "tollgate_abi.h"
}

#include <string_view>

static_assert(sizeof(tg_config) == 56);
static_assert(sizeof(tg_service_key) == 20);
static_assert(sizeof(tg_service) == 20);
static_assert(sizeof(tg_recent_flows) == 24);
static_assert(sizeof(tg_vip_address) == 20);
static_assert(sizeof(tg_backend_endpoint) == 20);
static_assert(sizeof(tg_backend) == 32);
static_assert(sizeof(tg_flow_key) == 40);
static_assert(sizeof(tg_flow) == 24);
static_assert(sizeof(tg_fib_entry) == 40);
static_assert(sizeof(tg_reply_hop) == 48);
static_assert(TG_REPLY_HOPS == 1u << 12, "tg_reply_hop_slot() takes 12 bits");
static_assert(TG_VIP_FILTER_WORDS * 32 == 1u << 16, "tg_vip_filter_bit() takes 16 bits");
static_assert(sizeof(tg_counters) == 24);
static_assert(sizeof(tg_reverse_nat) == 24);
static_assert(sizeof(tg_fragment_key) == 40);
static_assert(sizeof(tg_fragment) == 40);
static_assert(sizeof(tg_backend_health) == 48);
static_assert(sizeof(tg_service_policy) == 56);
static_assert(sizeof(tg_acl_key) == 28);
static_assert(sizeof(tg_bucket_key) == 24);
static_assert(sizeof(tg_bucket) == 16);
static_assert(sizeof(tg_conn_bucket) == 8);
static_assert(sizeof(tg_event_key) == 28);
static_assert(sizeof(tg_event_aggregate) == 16);
static_assert(sizeof(tg_event_stats) == 16);
static_assert(sizeof(tg_event) == 40);

namespace tollgate {

// Stable, metric-friendly name of a drop reason ("ipv4_fragment").
std::string_view drop_reason_name(tg_drop_reason reason);
// Stable name of an event kind ("rate_limited").
std::string_view event_kind_name(tg_event_kind kind);

}  // namespace tollgate
