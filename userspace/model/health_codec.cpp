#include "health_codec.h"

#include <algorithm>
#include <cstdio>
#include <tuple>
#include <utility>
#include <vector>

#include "json_fields.h"

namespace tollgate {

using namespace json_fields;

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

}  // namespace

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

}  // namespace tollgate
