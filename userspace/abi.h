// The C++ side of maps/tollgate_abi.h: size checks and names.
#pragma once

extern "C" {
#include "tollgate_abi.h"
}

#include <string_view>

static_assert(sizeof(tg_config) == 40);
static_assert(sizeof(tg_service_key) == 20);
static_assert(sizeof(tg_service) == 16);
static_assert(sizeof(tg_vip_address) == 20);
static_assert(sizeof(tg_backend) == 32);
static_assert(sizeof(tg_flow_key) == 40);
static_assert(sizeof(tg_flow) == 24);
static_assert(sizeof(tg_counters) == 24);
static_assert(sizeof(tg_reverse_nat) == 20);
static_assert(sizeof(tg_backend_health) == 32);

namespace tollgate {

// Stable, metric-friendly name of a drop reason ("ipv4_fragment").
std::string_view drop_reason_name(tg_drop_reason reason);

}  // namespace tollgate
