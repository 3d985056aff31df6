#include "policy_maps.h"

#include <algorithm>
#include <cerrno>
#include <set>

#include "flow_walk.h"

namespace tollgate {
namespace {

uint8_t max_prefix(Family family) { return family == Family::ipv4 ? 32 : 128; }

tg_acl_key acl_key(uint32_t scope, const Cidr& cidr) {
  tg_acl_key key{};
  key.prefixlen = 64 + cidr.prefix;
  key.scope = scope;
  key.family = static_cast<uint32_t>(cidr.address.family);
  cidr.address.to_words(key.addr);
  return key;
}

std::optional<Cidr> cidr_of(const tg_acl_key& key) {
  if (key.family != TG_FAMILY_IPV4 && key.family != TG_FAMILY_IPV6) return std::nullopt;
  const auto family = static_cast<Family>(key.family);
  if (key.prefixlen < 64 || key.prefixlen - 64 > max_prefix(family)) return std::nullopt;
  return Cidr{IpAddress::from_words(key.addr, family), static_cast<uint8_t>(key.prefixlen - 64)};
}

}  // namespace

tg_service_policy to_kernel(const ServicePolicy& policy) {
  tg_service_policy value{};
  if (!policy.access.allow.empty()) value.flags |= TG_POLICY_ALLOW_LIST;
  if (!policy.access.deny.empty()) value.flags |= TG_POLICY_DENY_LIST;
  value.ipv4_prefix = 32;
  value.ipv6_prefix = 128;
  if (policy.rate_limit) {
    const auto& limit = *policy.rate_limit;
    value.flags |= TG_POLICY_RATE_LIMIT;
    value.ipv4_prefix = limit.ipv4_prefix;
    value.ipv6_prefix = limit.ipv6_prefix;
    value.packet_rate = limit.packets_per_second;
    value.packet_burst = limit.burst_packets;
    value.byte_rate = limit.bytes_per_second;
    value.byte_burst = limit.burst_bytes;
  }
  if (policy.new_connections) {
    value.flags |= TG_POLICY_CONN_LIMIT;
    value.conn_rate = policy.new_connections->per_second;
    value.conn_burst = policy.new_connections->burst;
  }
  if (policy.syn_authentication) value.flags |= TG_POLICY_SYN_AUTH;
  return value;
}

Status add_acl_entries(const DataPathMaps& maps, uint32_t scope, const AccessLists& lists) {
  const uint32_t present = 0;
  for (const auto& [trie, list] : {std::pair{&maps.acl_allow, &lists.allow}, std::pair{&maps.acl_deny, &lists.deny}}) {
    for (const auto& cidr : *list) {
      tg_acl_key key = acl_key(scope, cidr);
      if (auto status = trie->update_bytes(&key, &present, BPF_ANY, "entry = " + cidr.to_string()); !status)
        return status;
    }
  }
  return {};
}

Status remove_stale_acl_entries(const DataPathMaps& maps, uint32_t scope, const AccessLists& lists) {
  for (const auto& [trie, list] : {std::pair{&maps.acl_allow, &lists.allow}, std::pair{&maps.acl_deny, &lists.deny}}) {
    const std::set<Cidr> wanted(list->begin(), list->end());
    auto keys = all_keys<tg_acl_key>(*trie);
    if (!keys) return keys.error();
    for (const auto& key : *keys) {
      if (key.scope != scope) continue;
      auto cidr = cidr_of(key);
      if (cidr && wanted.contains(*cidr)) continue;
      if (auto removed = trie->remove(key); !removed) return removed.error();
    }
  }
  return {};
}

Result<AccessLists> read_acl_entries(const DataPathMaps& maps, uint32_t scope) {
  AccessLists lists;
  for (const auto& [trie, list] : {std::pair{&maps.acl_allow, &lists.allow}, std::pair{&maps.acl_deny, &lists.deny}}) {
    auto keys = all_keys<tg_acl_key>(*trie);
    if (!keys) return keys.error();
    for (const auto& key : *keys)
      if (key.scope == scope)
        if (auto cidr = cidr_of(key)) list->push_back(*cidr);
    std::sort(list->begin(), list->end());
  }
  return lists;
}

Status write_service_policy(const DataPathMaps& maps, uint32_t service_id, const ServicePolicy& policy, bool fresh) {
  if (auto status = add_acl_entries(maps, service_id, policy.access); !status) return status;
  if (fresh) {
    tg_conn_bucket full{};
    if (auto status = maps.conn_buckets.update(service_id, full); !status) return status;
  }
  tg_service_policy value = to_kernel(policy);
  if (auto status = maps.service_policy.update(service_id, value); !status) return status;
  return remove_stale_acl_entries(maps, service_id, policy.access);
}

Status clear_service_policy(const DataPathMaps& maps, uint32_t service_id) {
  if (auto status = write_service_policy(maps, service_id, {}, true); !status) return status;
  // Its sources' buckets: a later service with this id starts afresh.
  auto keys = all_keys<tg_bucket_key>(maps.source_buckets);
  if (!keys) return keys.error();
  std::erase_if(*keys, [service_id](const tg_bucket_key& key) { return key.service_id != service_id; });
  if (auto deleted = delete_keys(maps.source_buckets, *keys); !deleted) return deleted.error();
  return {};
}

Result<ServicePolicy> read_service_policy(const DataPathMaps& maps, uint32_t service_id) {
  ServicePolicy policy;
  tg_service_policy value{};
  auto found = maps.service_policy.lookup(service_id, value);
  if (!found) return found.error();
  if (!*found) return maps.service_policy.error("lookup", ENOENT, fmt::format("index = {}", service_id));
  auto access = read_acl_entries(maps, service_id);
  if (!access) return access.error();
  policy.access = std::move(*access);
  if (value.flags & TG_POLICY_RATE_LIMIT)
    policy.rate_limit = RateLimitSpec{value.packet_rate, value.packet_burst, value.byte_rate,
                                      value.byte_burst,  value.ipv4_prefix,  value.ipv6_prefix};
  if (value.flags & TG_POLICY_CONN_LIMIT)
    policy.new_connections = ConnectionLimitSpec{value.conn_rate, value.conn_burst};
  policy.syn_authentication = value.flags & TG_POLICY_SYN_AUTH;
  return policy;
}

}  // namespace tollgate
