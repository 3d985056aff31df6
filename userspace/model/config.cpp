#include "config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "json_fields.h"
#include "json_text.h"

namespace tollgate {
namespace {

using namespace json_fields;

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

}  // namespace

Result<Config> parse_config(std::string_view text) {
  auto document = parse_json_text(text);
  if (!document) return document.error();
  return parse_config_json(*document);
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

Status check_not_emptying(const Config& next, size_t services_now, std::string_view how_to_allow) {
  if (!next.services.empty() || services_now == 0) return {};
  return make_error(ErrorKind::conflict, "services: the config has none and would remove all {} services; {}",
                    services_now, how_to_allow);
}

Status check_policy_capacity(const Config& config) {
  size_t allow = config.access.allow.size(), deny = config.access.deny.size();
  for (const auto& service : config.services) {
    allow += service.policy.access.allow.size();
    deny += service.policy.access.deny.size();
  }
  return check_acl_capacity(allow, deny);
}

Status check_acl_capacity(size_t allow, size_t deny) {
  if (std::max(allow, deny) > TG_ACL_MAX_ENTRIES)
    return make_error(ErrorKind::capacity,
                      "policy: {} allow and {} deny entries in all, the data path holds at most {} of each", allow,
                      deny, TG_ACL_MAX_ENTRIES);
  return {};
}

}  // namespace tollgate
