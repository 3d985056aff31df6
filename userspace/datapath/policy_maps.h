// Policy in the maps: the access-list tries, each service's policy value
// and buckets, read back when adopting.
#pragma once

#include "loader.h"
#include "policy.h"
#include "result.h"

namespace tollgate {

// The kernel value of a service's policy (flags say what is set).
tg_service_policy to_kernel(const ServicePolicy& policy);

// Brings the lists of `scope` (TG_SCOPE_GLOBAL or a service id) to
// `lists` in two steps, around the write of the flags that turn them on:
// add what is missing first, then remove what is stale.
Status add_acl_entries(const DataPathMaps& maps, uint32_t scope, const AccessLists& lists);
Status remove_stale_acl_entries(const DataPathMaps& maps, uint32_t scope, const AccessLists& lists);
// What the kernel holds for `scope`, sorted.
Result<AccessLists> read_acl_entries(const DataPathMaps& maps, uint32_t scope);

// A service's whole policy: its lists, its value, and with `fresh` (a new
// service) its connection bucket starts full.
Status write_service_policy(const DataPathMaps& maps, uint32_t service_id, const ServicePolicy& policy, bool fresh);
// A removed service leaves nothing behind for the next user of its id.
Status clear_service_policy(const DataPathMaps& maps, uint32_t service_id);
Result<ServicePolicy> read_service_policy(const DataPathMaps& maps, uint32_t service_id);

}  // namespace tollgate
