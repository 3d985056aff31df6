#include "config.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

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

Result<ServiceSpec> parse_service_json(const json& object, const std::string& path) {
  if (auto status = check_fields(object, path, {"address", "maglev_size", "backends"}); !status) return status.error();
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
  if (auto status = check_fields(document, "", {"timeouts", "services"}); !status) return status.error();

  Config config;
  if (document.contains("timeouts")) {
    auto timeouts = parse_timeouts(document["timeouts"]);
    if (!timeouts) return timeouts.error();
    config.timeouts = *timeouts;
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
  return {{"address", service.address.to_string()}, {"maglev_size", service.maglev_size}, {"backends", backends}};
}

json config_to_json(const Config& config) {
  json services = json::array();
  for (const auto& service : config.services) services.push_back(service_to_json(service));
  return {{"timeouts",
           {{"tcp_syn", config.timeouts.tcp_syn.count()},
            {"tcp_established", config.timeouts.tcp_established.count()},
            {"tcp_closing", config.timeouts.tcp_closing.count()},
            {"udp", config.timeouts.udp.count()}}},
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
