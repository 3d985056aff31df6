#include "policy_codec.h"

#include <utility>

#include "json_fields.h"

namespace tollgate {

using namespace json_fields;

Result<AccessLists> parse_access_lists(const json& object, const std::string& path) {
  if (auto status = check_fields(object, path, {"allow", "deny"}); !status) return status.error();
  AccessLists lists;
  for (const auto& [name, list] : {std::pair{"allow", &lists.allow}, std::pair{"deny", &lists.deny}}) {
    if (!object.contains(name)) continue;
    const json& entries = object[name];
    if (!entries.is_array()) return make_error("{}: expected an array of CIDRs", join(path, name));
    for (size_t i = 0; i < entries.size(); ++i) {
      const std::string where = fmt::format("{}[{}]", join(path, name), i);
      auto text = string_field(entries[i], where);
      if (!text) return text.error();
      auto cidr = Cidr::parse(*text);
      if (!cidr) return make_error("{}: {}", where, cidr.error().message);
      list->push_back(*cidr);
    }
  }
  if (auto status = validate_access_lists(lists, path); !status) return status.error();
  return lists;
}

Result<ServicePolicy> parse_service_policy(const json& object, const std::string& path) {
  if (auto status =
          check_fields(object, path, {"allow", "deny", "rate_limit", "new_connections", "syn_authentication"});
      !status)
    return status.error();
  ServicePolicy policy;
  json lists = json::object();
  for (const char* name : {"allow", "deny"})
    if (object.contains(name)) lists[name] = object[name];
  auto access = parse_access_lists(lists, path);
  if (!access) return access.error();
  policy.access = std::move(*access);
  if (object.contains("rate_limit") && !object["rate_limit"].is_null()) {
    const json& limit = object["rate_limit"];
    const std::string where = join(path, "rate_limit");
    if (auto status = check_fields(
            limit, where,
            {"packets_per_second", "burst_packets", "bytes_per_second", "burst_bytes", "ipv4_prefix", "ipv6_prefix"});
        !status)
      return status.error();
    RateLimitSpec spec;
    const std::pair<const char*, uint64_t*> numbers[] = {{"packets_per_second", &spec.packets_per_second},
                                                         {"burst_packets", &spec.burst_packets},
                                                         {"bytes_per_second", &spec.bytes_per_second},
                                                         {"burst_bytes", &spec.burst_bytes}};
    for (const auto& [name, target] : numbers) {
      if (!limit.contains(name)) continue;
      auto number = unsigned_field(limit[name], join(where, name), 0, UINT64_MAX / 2);
      if (!number) return number.error();
      *target = *number;
    }
    const std::pair<const char*, uint8_t*> prefixes[] = {{"ipv4_prefix", &spec.ipv4_prefix},
                                                         {"ipv6_prefix", &spec.ipv6_prefix}};
    for (const auto& [name, target] : prefixes) {
      if (!limit.contains(name)) continue;
      auto number =
          unsigned_field(limit[name], join(where, name), 1, std::string_view(name) == "ipv4_prefix" ? 32 : 128);
      if (!number) return number.error();
      *target = static_cast<uint8_t>(*number);
    }
    auto complete = complete_rate_limit(spec, limit.contains("burst_packets"), limit.contains("burst_bytes"), where);
    if (!complete) return complete.error();
    policy.rate_limit = *complete;
  }
  if (object.contains("new_connections") && !object["new_connections"].is_null()) {
    const json& limit = object["new_connections"];
    const std::string where = join(path, "new_connections");
    if (auto status = check_fields(limit, where, {"per_second", "burst"}); !status) return status.error();
    if (!limit.contains("per_second")) return make_error("{}: missing", join(where, "per_second"));
    ConnectionLimitSpec spec;
    auto rate = unsigned_field(limit["per_second"], join(where, "per_second"), 1, 1'000'000'000);
    if (!rate) return rate.error();
    spec.per_second = *rate;
    if (limit.contains("burst")) {
      auto burst = unsigned_field(limit["burst"], join(where, "burst"), 1, 1'000'000'000);
      if (!burst) return burst.error();
      spec.burst = *burst;
    }
    auto complete = complete_connection_limit(spec, limit.contains("burst"), where);
    if (!complete) return complete.error();
    policy.new_connections = *complete;
  }
  if (object.contains("syn_authentication")) {
    if (!object["syn_authentication"].is_boolean())
      return make_error("{}: must be true or false", join(path, "syn_authentication"));
    policy.syn_authentication = object["syn_authentication"].get<bool>();
  }
  return policy;
}

Result<EventSettings> parse_event_settings(const json& object, const std::string& path) {
  if (auto status = check_fields(object, path, {"interval_ms", "per_second"}); !status) return status.error();
  EventSettings events;
  if (object.contains("interval_ms")) {
    auto interval = unsigned_field(object["interval_ms"], join(path, "interval_ms"), 1, 3600 * 1000);
    if (!interval) return interval.error();
    events.interval = std::chrono::milliseconds(*interval);
  }
  if (object.contains("per_second")) {
    auto rate = unsigned_field(object["per_second"], join(path, "per_second"), 0, 100000);
    if (!rate) return rate.error();
    events.per_second = static_cast<uint32_t>(*rate);
  }
  return events;
}

json access_lists_to_json(const AccessLists& lists) {
  json allow = json::array(), deny = json::array();
  for (const auto& cidr : lists.allow) allow.push_back(cidr.to_string());
  for (const auto& cidr : lists.deny) deny.push_back(cidr.to_string());
  return {{"allow", allow}, {"deny", deny}};
}

json service_policy_to_json(const ServicePolicy& policy) {
  json out = access_lists_to_json(policy.access);
  if (policy.rate_limit) {
    const auto& limit = *policy.rate_limit;
    json rate = {{"ipv4_prefix", limit.ipv4_prefix}, {"ipv6_prefix", limit.ipv6_prefix}};
    if (limit.packets_per_second) {
      rate["packets_per_second"] = limit.packets_per_second;
      rate["burst_packets"] = limit.burst_packets;
    }
    if (limit.bytes_per_second) {
      rate["bytes_per_second"] = limit.bytes_per_second;
      rate["burst_bytes"] = limit.burst_bytes;
    }
    out["rate_limit"] = rate;
  }
  if (policy.new_connections)
    out["new_connections"] = {{"per_second", policy.new_connections->per_second},
                              {"burst", policy.new_connections->burst}};
  if (policy.syn_authentication) out["syn_authentication"] = true;
  return out;
}

json event_settings_to_json(const EventSettings& events) {
  return {{"interval_ms", static_cast<uint64_t>(events.interval.count())}, {"per_second", events.per_second}};
}

}  // namespace tollgate
