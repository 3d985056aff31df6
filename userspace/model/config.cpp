#include "config.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

namespace tollgate {
namespace {

using nlohmann::json;

// "services[0]" + "address" -> "services[0].address"; "" + "address" -> "address".
std::string join(const std::string& path, std::string_view field) {
  return path.empty() ? std::string(field) : fmt::format("{}.{}", path, field);
}

Status check_fields(const json& object, const std::string& path, std::initializer_list<std::string_view> allowed) {
  if (!object.is_object()) return make_error("{}: expected an object", path.empty() ? "(top level)" : path);
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (auto field : allowed) known = known || key == field;
    if (!known) return make_error("{}: unknown field", join(path, key));
  }
  return {};
}

Result<uint64_t> unsigned_field(const json& value, const std::string& path, uint64_t low, uint64_t high) {
  if (!value.is_number_unsigned()) return make_error("{}: expected an integer {}-{}", path, low, high);
  uint64_t number = value.get<uint64_t>();
  if (number < low || number > high) return make_error("{}: {} is out of range {}-{}", path, number, low, high);
  return number;
}

Result<std::string> string_field(const json& value, const std::string& path) {
  if (!value.is_string()) return make_error("{}: expected a string", path);
  return value.get<std::string>();
}

}  // namespace

Result<BackendState> parse_backend_state(const std::string& text, const std::string& path) {
  if (text == "up") return BackendState::up;
  if (text == "draining") return BackendState::draining;
  if (text == "down") return BackendState::down;
  return make_error("{}: unknown state '{}' (expected up, draining or down)", path, text);
}

Result<BackendSpec> parse_backend_json(const json& object, const std::string& path) {
  if (auto status = check_fields(object, path, {"address", "weight", "state"}); !status) return status.error();
  BackendSpec backend;
  if (!object.contains("address")) return make_error("{}: missing", join(path, "address"));
  auto text = string_field(object["address"], join(path, "address"));
  if (!text) return text.error();
  auto endpoint = Endpoint::parse(*text);
  if (!endpoint) return make_error("{}: {}", join(path, "address"), endpoint.error().message);
  backend.endpoint = *endpoint;
  if (object.contains("weight")) {
    auto weight = unsigned_field(object["weight"], join(path, "weight"), 1, kMaxWeight);
    if (!weight) return weight.error();
    backend.weight = static_cast<uint32_t>(*weight);
  }
  if (object.contains("state")) {
    auto state_text = string_field(object["state"], join(path, "state"));
    if (!state_text) return state_text.error();
    auto state = parse_backend_state(*state_text, join(path, "state"));
    if (!state) return state.error();
    backend.state = *state;
  }
  return backend;
}

std::string_view check_type_name(CheckType type) {
  switch (type) {
    case CheckType::tcp: return "tcp";
    case CheckType::http: return "http";
    case CheckType::udp: return "udp";
  }
  return "?";
}

namespace {

Result<std::chrono::milliseconds> millis_field(const json& value, const std::string& path, uint64_t low,
                                               uint64_t high) {
  auto number = unsigned_field(value, path, low, high);
  if (!number) return number.error();
  return std::chrono::milliseconds(*number);
}

// "expect_status": [200, "300-399"]
Result<std::vector<std::pair<uint16_t, uint16_t>>> parse_status_ranges(const json& value, const std::string& path) {
  if (!value.is_array() || value.empty()) return make_error("{}: expected a non-empty array", path);
  std::vector<std::pair<uint16_t, uint16_t>> ranges;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string item = fmt::format("{}[{}]", path, i);
    if (value[i].is_number_unsigned()) {
      auto code = unsigned_field(value[i], item, 100, 599);
      if (!code) return code.error();
      ranges.emplace_back(*code, *code);
      continue;
    }
    unsigned low = 0, high = 0;
    char tail = 0;
    if (!value[i].is_string() || std::sscanf(value[i].get<std::string>().c_str(), "%u-%u%c", &low, &high, &tail) != 2 ||
        low < 100 || high > 599 || low > high)
      return make_error("{}: expected a status code or a range like \"200-299\" within 100-599", item);
    ranges.emplace_back(low, high);
  }
  return ranges;
}

Result<HealthCheckSpec> parse_health_check(const json& object, const std::string& path) {
  if (auto status = check_fields(
          object, path,
          {"type", "interval_ms", "timeout_ms", "rise", "fall", "port", "path", "expect_status", "payload", "expect"});
      !status)
    return status.error();
  HealthCheckSpec check;
  if (!object.contains("type")) return make_error("{}: missing (tcp, http or udp)", join(path, "type"));
  auto type = string_field(object["type"], join(path, "type"));
  if (!type) return type.error();
  if (*type == "tcp")
    check.type = CheckType::tcp;
  else if (*type == "http")
    check.type = CheckType::http;
  else if (*type == "udp")
    check.type = CheckType::udp;
  else
    return make_error("{}: unknown type '{}' (expected tcp, http or udp)", join(path, "type"), *type);
  if (object.contains("interval_ms")) {
    auto interval = millis_field(object["interval_ms"], join(path, "interval_ms"), 100, 3600000);
    if (!interval) return interval.error();
    check.interval = *interval;
  }
  check.timeout = std::min(check.timeout, check.interval);
  if (object.contains("timeout_ms")) {
    auto timeout = millis_field(object["timeout_ms"], join(path, "timeout_ms"), 10, 3600000);
    if (!timeout) return timeout.error();
    if (*timeout > check.interval)
      return make_error("{}: {} ms is longer than the interval ({} ms)", join(path, "timeout_ms"), timeout->count(),
                        check.interval.count());
    check.timeout = *timeout;
  }
  for (auto [name, target] : {std::pair{"rise", &check.rise}, std::pair{"fall", &check.fall}}) {
    if (!object.contains(name)) continue;
    auto count = unsigned_field(object[name], join(path, name), 1, 100);
    if (!count) return count.error();
    *target = static_cast<uint32_t>(*count);
  }
  if (object.contains("port")) {
    auto port = unsigned_field(object["port"], join(path, "port"), 1, 65535);
    if (!port) return port.error();
    check.port = static_cast<uint16_t>(*port);
  }
  const bool http = check.type == CheckType::http, udp = check.type == CheckType::udp;
  for (auto [name, allowed] :
       {std::pair{"path", http}, std::pair{"expect_status", http}, std::pair{"payload", udp}, std::pair{"expect", udp}})
    if (object.contains(name) && !allowed) return make_error("{}: not used by a {} check", join(path, name), *type);
  if (object.contains("path")) {
    auto request_path = string_field(object["path"], join(path, "path"));
    if (!request_path) return request_path.error();
    bool printable = !request_path->empty() && request_path->front() == '/' && request_path->size() <= 1024;
    for (unsigned char c : *request_path) printable = printable && c > 0x20 && c < 0x7f;
    if (!printable)
      return make_error("{}: expected an absolute path of printable characters, no spaces", join(path, "path"));
    check.path = *request_path;
  }
  if (object.contains("expect_status")) {
    auto ranges = parse_status_ranges(object["expect_status"], join(path, "expect_status"));
    if (!ranges) return ranges.error();
    check.expect_status = *ranges;
  }
  for (auto [name, target] : {std::pair{"payload", &check.payload}, std::pair{"expect", &check.expect}}) {
    if (!object.contains(name)) continue;
    auto text = string_field(object[name], join(path, name));
    if (!text) return text.error();
    if (text->size() > 1024) return make_error("{}: longer than 1024 bytes", join(path, name));
    *target = *text;
  }
  if (check.payload.empty()) return make_error("{}: must not be empty", join(path, "payload"));
  return check;
}

Result<OutlierSpec> parse_outlier(const json& object, const std::string& path) {
  if (auto status = check_fields(object, path,
                                 {"enabled", "failure_percent", "min_failures", "consecutive_failures", "window_ms",
                                  "ejection_ms", "max_ejection_ms", "half_open_successes", "max_ejected_percent"});
      !status)
    return status.error();
  OutlierSpec outlier;
  if (object.contains("enabled")) {
    if (!object["enabled"].is_boolean()) return make_error("{}: expected true or false", join(path, "enabled"));
    outlier.enabled = object["enabled"].get<bool>();
  }
  const std::tuple<const char*, uint32_t*, uint64_t, uint64_t> counts[] = {
      {"failure_percent", &outlier.failure_percent, 1, 100},
      {"min_failures", &outlier.min_failures, 1, 1000000},
      {"consecutive_failures", &outlier.consecutive_failures, 1, 1000000},
      {"half_open_successes", &outlier.half_open_successes, 1, 1000},
      {"max_ejected_percent", &outlier.max_ejected_percent, 1, 100}};
  for (const auto& [name, target, low, high] : counts) {
    if (!object.contains(name)) continue;
    auto count = unsigned_field(object[name], join(path, name), low, high);
    if (!count) return count.error();
    *target = static_cast<uint32_t>(*count);
  }
  const std::pair<const char*, std::chrono::milliseconds*> times[] = {
      {"window_ms", &outlier.window}, {"ejection_ms", &outlier.ejection}, {"max_ejection_ms", &outlier.max_ejection}};
  for (const auto& [name, target] : times) {
    if (!object.contains(name)) continue;
    auto millis = millis_field(object[name], join(path, name), 100, 24 * 3600 * 1000);
    if (!millis) return millis.error();
    *target = *millis;
  }
  if (outlier.max_ejection < outlier.ejection)
    return make_error("{}: {} ms is shorter than ejection_ms ({} ms)", join(path, "max_ejection_ms"),
                      outlier.max_ejection.count(), outlier.ejection.count());
  return outlier;
}

json status_ranges_to_json(const std::vector<std::pair<uint16_t, uint16_t>>& ranges) {
  json out = json::array();
  for (auto [low, high] : ranges) {
    if (low == high)
      out.push_back(low);
    else
      out.push_back(fmt::format("{}-{}", low, high));
  }
  return out;
}

json health_check_to_json(const HealthCheckSpec& check) {
  json out = {{"type", check_type_name(check.type)},
              {"interval_ms", static_cast<uint64_t>(check.interval.count())},
              {"timeout_ms", static_cast<uint64_t>(check.timeout.count())},
              {"rise", check.rise},
              {"fall", check.fall}};
  if (check.port) out["port"] = check.port;
  if (check.type == CheckType::http) {
    out["path"] = check.path;
    out["expect_status"] = status_ranges_to_json(check.expect_status);
  }
  if (check.type == CheckType::udp) {
    out["payload"] = check.payload;
    out["expect"] = check.expect;
  }
  return out;
}

json outlier_to_json(const OutlierSpec& outlier) {
  return {{"enabled", outlier.enabled},
          {"failure_percent", outlier.failure_percent},
          {"min_failures", outlier.min_failures},
          {"consecutive_failures", outlier.consecutive_failures},
          {"window_ms", static_cast<uint64_t>(outlier.window.count())},
          {"ejection_ms", static_cast<uint64_t>(outlier.ejection.count())},
          {"max_ejection_ms", static_cast<uint64_t>(outlier.max_ejection.count())},
          {"half_open_successes", outlier.half_open_successes},
          {"max_ejected_percent", outlier.max_ejected_percent}};
}

}  // namespace

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

Status check_policy_capacity(const Config& config) {
  size_t allow = config.access.allow.size(), deny = config.access.deny.size();
  for (const auto& service : config.services) {
    allow += service.policy.access.allow.size();
    deny += service.policy.access.deny.size();
  }
  if (std::max(allow, deny) > TG_ACL_MAX_ENTRIES)
    return make_error(ErrorKind::capacity,
                      "policy: {} allow and {} deny entries in all, the data path holds at most {} of each", allow,
                      deny, TG_ACL_MAX_ENTRIES);
  return {};
}

Result<ServiceSpec> parse_service_json(const json& object, const std::string& path) {
  if (auto status = check_fields(object, path,
                                 {"address", "maglev_size", "backends", "health_check", "outlier_detection", "policy"});
      !status)
    return status.error();
  ServiceSpec service;
  if (!object.contains("address")) return make_error("{}: missing", join(path, "address"));
  auto text = string_field(object["address"], join(path, "address"));
  if (!text) return text.error();
  auto address = ServiceAddress::parse(*text);
  if (!address) return make_error("{}: {}", join(path, "address"), address.error().message);
  service.address = *address;
  if (object.contains("maglev_size")) {
    auto size = unsigned_field(object["maglev_size"], join(path, "maglev_size"), 2, TG_MAGLEV_MAX_SIZE);
    if (!size) return size.error();
    service.maglev_size = static_cast<uint32_t>(*size);
  }
  if (object.contains("backends")) {
    const json& backends = object["backends"];
    if (!backends.is_array()) return make_error("{}: expected an array", join(path, "backends"));
    for (size_t i = 0; i < backends.size(); ++i) {
      auto backend = parse_backend_json(backends[i], fmt::format("{}[{}]", join(path, "backends"), i));
      if (!backend) return backend.error();
      service.backends.push_back(*backend);
    }
  }
  if (object.contains("health_check") && !object["health_check"].is_null()) {
    auto check = parse_health_check(object["health_check"], join(path, "health_check"));
    if (!check) return check.error();
    service.health_check = *check;
  }
  if (object.contains("outlier_detection")) {
    auto outlier = parse_outlier(object["outlier_detection"], join(path, "outlier_detection"));
    if (!outlier) return outlier.error();
    service.outlier_detection = *outlier;
  }
  if (object.contains("policy") && !object["policy"].is_null()) {
    auto policy = parse_service_policy(object["policy"], join(path, "policy"));
    if (!policy) return policy.error();
    service.policy = std::move(*policy);
  }
  if (auto status = validate_service(service); !status) return make_error("{}", join(path, status.error().message));
  return service;
}

namespace {

Result<FlowTimeouts> parse_timeouts(const json& object) {
  const std::string path = "timeouts";
  if (auto status = check_fields(object, path, {"tcp_syn", "tcp_established", "tcp_closing", "udp"}); !status)
    return status.error();
  FlowTimeouts timeouts;
  const std::pair<const char*, std::chrono::seconds*> fields[] = {{"tcp_syn", &timeouts.tcp_syn},
                                                                  {"tcp_established", &timeouts.tcp_established},
                                                                  {"tcp_closing", &timeouts.tcp_closing},
                                                                  {"udp", &timeouts.udp}};
  for (const auto& [name, target] : fields) {
    if (!object.contains(name)) continue;
    auto seconds = unsigned_field(object[name], join(path, name), 1, 7 * 24 * 3600);
    if (!seconds) return seconds.error();
    *target = std::chrono::seconds(*seconds);
  }
  return timeouts;
}

std::string position(std::string_view text, size_t byte) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return fmt::format("line {}, column {}", line, column);
}

}  // namespace

std::string_view backend_state_name(BackendState state) {
  switch (state) {
    case BackendState::up: return "up";
    case BackendState::draining: return "draining";
    case BackendState::down: return "down";
  }
  return "?";
}

Result<Config> parse_config(std::string_view text) {
  json document;
  try {
    document = json::parse(text);
  } catch (const json::parse_error& error) {
    std::string message = error.what();
    if (auto at = message.find("]: "); at != std::string::npos) message = message.substr(at + 3);
    return make_error("{}: {}", position(text, error.byte > 0 ? error.byte - 1 : 0), message);
  }
  return parse_config_json(document);
}

Result<Config> parse_config_json(const json& document) {
  if (auto status = check_fields(document, "", {"timeouts", "access", "events", "services"}); !status)
    return status.error();

  Config config;
  if (document.contains("timeouts")) {
    auto timeouts = parse_timeouts(document["timeouts"]);
    if (!timeouts) return timeouts.error();
    config.timeouts = *timeouts;
  }
  if (document.contains("access")) {
    auto access = parse_access_lists(document["access"], "access");
    if (!access) return access.error();
    config.access = std::move(*access);
  }
  if (document.contains("events")) {
    auto events = parse_event_settings(document["events"], "events");
    if (!events) return events.error();
    config.events = *events;
  }
  if (document.contains("services")) {
    const json& services = document["services"];
    if (!services.is_array()) return make_error("services: expected an array");
    std::set<ServiceAddress> seen;
    for (size_t i = 0; i < services.size(); ++i) {
      auto service = parse_service_json(services[i], fmt::format("services[{}]", i));
      if (!service) return service.error();
      if (!seen.insert(service->address).second)
        return make_error("services[{}].address: {} is listed twice", i, service->address.to_string());
      config.services.push_back(std::move(*service));
    }
  }
  if (auto status = check_policy_capacity(config); !status) return status.error();
  return config;
}

json backend_to_json(const BackendSpec& backend) {
  return {{"address", backend.endpoint.to_string()},
          {"weight", backend.weight},
          {"state", backend_state_name(backend.state)}};
}

json service_to_json(const ServiceSpec& service) {
  json backends = json::array();
  for (const auto& backend : service.backends) backends.push_back(backend_to_json(backend));
  json out = {{"address", service.address.to_string()},
              {"maglev_size", service.maglev_size},
              {"backends", backends},
              {"outlier_detection", outlier_to_json(service.outlier_detection)}};
  if (service.health_check) out["health_check"] = health_check_to_json(*service.health_check);
  if (!service.policy.empty()) out["policy"] = service_policy_to_json(service.policy);
  return out;
}

json config_to_json(const Config& config) {
  json services = json::array();
  for (const auto& service : config.services) services.push_back(service_to_json(service));
  return {{"timeouts",
           {{"tcp_syn", static_cast<uint64_t>(config.timeouts.tcp_syn.count())},
            {"tcp_established", static_cast<uint64_t>(config.timeouts.tcp_established.count())},
            {"tcp_closing", static_cast<uint64_t>(config.timeouts.tcp_closing.count())},
            {"udp", static_cast<uint64_t>(config.timeouts.udp.count())}}},
          {"access", access_lists_to_json(config.access)},
          {"events", event_settings_to_json(config.events)},
          {"services", services}};
}

std::string content_digest(std::string_view content) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char byte : content) {
    hash ^= byte;
    hash *= 1099511628211ull;
  }
  return fmt::format("{:016x}", hash);
}

Result<ConfigFile> load_config_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) return make_error("cannot read config file {}: {}", path, std::strerror(errno));
  std::stringstream buffer;
  buffer << file.rdbuf();
  auto config = parse_config(buffer.str());
  if (!config) return make_error("{}: {}", path, config.error().message);
  return ConfigFile{std::move(*config), content_digest(buffer.str())};
}

}  // namespace tollgate
