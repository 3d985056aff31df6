#include "api.h"

#include <unistd.h>

#include <algorithm>

#include "flows.h"
#include "metrics.h"
#include "reconcile.h"

namespace tollgate {

using nlohmann::json;

struct Api::Outcome {
  HttpResponse response;
  std::string action;  // set for mutations (audited); reads leave it empty
  std::string object;
  json before;
  json after;
};

namespace {

HttpResponse reply(int status, const json& body) { return {status, body.dump(2) + "\n"}; }
HttpResponse failure(int status, const std::string& message) { return reply(status, {{"error", message}}); }

std::string_view result_name(int status) {
  if (status < 400) return "ok";
  switch (status) {
    case 400: return "invalid";
    case 403: return "denied";
    case 404: return "not_found";
    case 405: return "invalid";
    case 409: return "conflict";
    case 413: return "invalid";
  }
  return status < 500 ? "invalid" : "failed";
}

Result<json> parse_body(const HttpRequest& request) {
  if (request.body.empty()) return make_error("body: expected a JSON object");
  try {
    json body = json::parse(request.body);
    if (!body.is_object()) return make_error("body: expected a JSON object");
    return body;
  } catch (const json::parse_error& error) {
    return make_error("body: invalid JSON at byte {}", error.byte);
  }
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> segments;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) segments.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return segments;
}

ServiceSpec* find_service(Config& config, const ServiceAddress& address) {
  for (auto& service : config.services)
    if (service.address == address) return &service;
  return nullptr;
}

BackendSpec* find_backend(ServiceSpec& service, const Endpoint& endpoint) {
  for (auto& backend : service.backends)
    if (backend.endpoint == endpoint) return &backend;
  return nullptr;
}

std::optional<size_t> query_number(const std::string& query, std::string_view name) {
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    std::string_view item(query.data() + start, end - start);
    if (item.starts_with(name) && item.size() > name.size() && item[name.size()] == '=') {
      std::string_view value = item.substr(name.size() + 1);
      if (value.empty() || value.size() > 9 || value.find_first_not_of("0123456789") != std::string_view::npos)
        return std::nullopt;
      return std::stoul(std::string(value));
    }
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> AccessPolicy::refuse(const Caller& caller) const {
  if (uids.contains(caller.uid) || gids.contains(caller.gid)) return std::nullopt;
  for (gid_t group : caller.groups)
    if (gids.contains(group)) return std::nullopt;
  return fmt::format("uid {} (gid {}) is not allowed to use the tollgate API; allowed: uids {}, gids {}", caller.uid,
                     caller.gid, fmt::join(uids, ","), gids.empty() ? "none" : fmt::format("{}", fmt::join(gids, ",")));
}

Api::Api(Controller& controller, AuditLog& audit, AccessPolicy access, AgentInfo info, const HealthMonitor* health,
         const EventMonitor* events)
    : controller_(controller),
      audit_(audit),
      access_(std::move(access)),
      info_(std::move(info)),
      health_(health),
      events_(events) {}

Result<json> Api::backends_status(const ServiceSpec& service) const {
  auto active = active_flow_counts(controller_.maps());
  if (!active) return active.error();
  const auto health = health_ ? health_->snapshot() : std::map<BackendKey, BackendHealth>{};
  json out = json::array();
  for (const auto& backend : service.backends) {
    const BackendKey key{service.address, backend.endpoint};
    json entry = backend_to_json(backend);
    auto index = controller_.dataplane().backend_index(service.address, backend.endpoint);
    auto count = index ? active->find(*index) : active->end();
    entry["active_flows"] = count == active->end() ? 0 : count->second;
    const bool held = controller_.held_down(key);
    entry["selectable"] = backend.state == BackendState::up && !held;
    auto found = health.find(key);
    BackendHealth status = found == health.end() ? BackendHealth{} : found->second;
    status.held_down = held;
    entry["health"] = status.to_json();
    out.push_back(std::move(entry));
  }
  return out;
}

void Api::audit_rejected(const Caller& caller, const HttpResponse& response) {
  json body = json::parse(response.body, nullptr, false);
  audit_.record({{"action", "request"},
                 {"actor", {{"source", "api"}, {"caller", caller.to_json()}}},
                 {"result", result_name(response.status)},
                 {"status", response.status},
                 {"error", body.is_object() ? body.value("error", "") : ""}});
}

HttpResponse Api::handle(const HttpRequest& request) {
  const std::string request_name = fmt::format("{} {}", request.method, request.path);
  if (auto why = access_.refuse(request.caller)) {
    audit_.record({{"action", request_name},
                   {"actor", {{"source", "api"}, {"caller", request.caller.to_json()}}},
                   {"result", "denied"},
                   {"status", 403},
                   {"error", *why}});
    return failure(403, *why);
  }
  std::lock_guard lock(controller_.mutex());
  Outcome outcome = route(request);
  const int status = outcome.response.status;
  if (!outcome.action.empty() || status >= 400) {
    json entry = {{"action", outcome.action.empty() ? request_name : outcome.action},
                  {"actor", {{"source", "api"}, {"caller", request.caller.to_json()}}},
                  {"result", result_name(status)},
                  {"status", status}};
    if (!outcome.object.empty()) entry["object"] = outcome.object;
    if (status < 400) {
      entry["before"] = outcome.before;
      entry["after"] = outcome.after;
    } else {
      json body = json::parse(outcome.response.body, nullptr, false);
      entry["error"] = body.is_object() ? body.value("error", "") : "";
    }
    audit_.record(entry);
  }
  return outcome.response;
}

Api::Outcome Api::route(const HttpRequest& request) {
  const auto raw = split_path(request.path);
  std::vector<std::string> segments;
  for (const auto& segment : raw) {
    auto decoded = percent_decode(segment);
    if (!decoded) return {failure(400, fmt::format("path: {}", decoded.error().message))};
    segments.push_back(*decoded);
  }
  const std::string& method = request.method;
  auto not_allowed = [&]() {
    return Outcome{failure(405, fmt::format("{} is not allowed on {}", method, request.path))};
  };
  if (segments.empty() || segments[0] != "v1")
    return {failure(404, fmt::format("no such endpoint {}; the API lives under /v1", request.path))};

  const Config& desired = controller_.state().desired;
  const json actor = {{"source", "api"}, {"caller", request.caller.to_json()}};
  // Applies `next` for a mutation; fills the response.
  auto commit = [&](Outcome outcome, const Config& next, int success_status, json body) {
    if (auto status = controller_.apply(next, actor); !status) {
      outcome.response = failure(500, status.error().message);
    } else {
      outcome.response = reply(success_status, body);
    }
    return outcome;
  };

  // /v1/status, /v1/config, /v1/stats, /v1/conntrack
  if (segments.size() == 2 && segments[1] == "status") {
    if (method != "GET") return not_allowed();
    const auto& state = controller_.state();
    size_t backends = 0;
    for (const auto& service : state.desired.services) backends += service.backends.size();
    auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
    return {reply(200, {{"version", info_.version},
                        {"abi_version", TG_ABI_VERSION},
                        {"pid", getpid()},
                        {"uptime_seconds", uptime.count()},
                        {"adopted", info_.adopted},
                        {"pin_dir", info_.pin_dir},
                        {"state_dir", info_.state_dir},
                        {"programs", {{"xdp", info_.xdp_program_id}, {"tc", info_.tc_program_id}}},
                        {"xdp_mode", info_.xdp_mode},
                        {"interfaces", {{"xdp", state.xdp_interfaces}, {"tc", state.tc_interfaces}}},
                        {"flow_capacity", info_.flow_capacity},
                        {"services", state.desired.services.size()},
                        {"backends", backends}})};
  }
  if (segments.size() == 2 && segments[1] == "config") {
    if (method == "GET") return {reply(200, config_to_json(desired))};
    if (method != "PUT") return not_allowed();
    Outcome outcome{{}, "config.replace", "config", config_to_json(desired), {}};
    auto body = parse_body(request);
    if (!body) return {failure(400, body.error().message), outcome.action, outcome.object};
    auto next = parse_config_json(*body);
    if (!next) return {failure(400, next.error().message), outcome.action, outcome.object};
    outcome.after = config_to_json(*next);
    return commit(outcome, *next, 200, outcome.after);
  }
  if (segments.size() == 2 && segments[1] == "metrics") {
    if (method != "GET") return not_allowed();
    auto text = prometheus_metrics(controller_, health_, events_);
    if (!text) return {failure(500, text.error().message)};
    return {HttpResponse{200, *text, "text/plain; version=0.0.4"}};
  }
  if (segments.size() == 2 && segments[1] == "stats") {
    if (method != "GET") return not_allowed();
    return {reply(200, stats_report(controller_.dataplane(), controller_.maps()))};
  }
  if (segments.size() == 2 && segments[1] == "conntrack") {
    if (method == "GET") {
      size_t limit = 1000;
      if (request.query.find("limit=") != std::string::npos) {
        auto number = query_number(request.query, "limit");
        if (!number || *number == 0) return {failure(400, "limit: expected an integer 1-999999999")};
        limit = *number;
      }
      auto flows = list_flows(controller_.dataplane(), controller_.maps(), limit);
      if (!flows) return {failure(500, flows.error().message)};
      return {reply(200, *flows)};
    }
    if (method != "DELETE") return not_allowed();
    auto flushed = flush_flows(controller_.maps());
    if (!flushed) return {failure(500, flushed.error().message), "conntrack.flush", "conntrack"};
    return {reply(200, {{"flushed", *flushed}}), "conntrack.flush", "conntrack", nullptr, {{"flushed", *flushed}}};
  }

  if (segments.size() == 2 && segments[1] == "events") {
    if (method != "GET") return not_allowed();
    if (!events_) return {failure(404, "this agent does not read data path events")};
    size_t after = 0, limit = 1000;
    if (request.query.find("after=") != std::string::npos) {
      auto number = query_number(request.query, "after");
      if (!number) return {failure(400, "after: expected an integer 0-999999999")};
      after = *number;
    }
    if (request.query.find("limit=") != std::string::npos) {
      auto number = query_number(request.query, "limit");
      if (!number || *number == 0) return {failure(400, "limit: expected an integer 1-999999999")};
      limit = *number;
    }
    return {reply(200, events_->since(after, limit))};
  }
  // /v1/policy: the global lists and every service's policy;
  // /v1/policy/access: the global lists alone.
  if (segments.size() >= 2 && segments[1] == "policy") {
    if (segments.size() == 2) {
      if (method != "GET") return not_allowed();
      json services = json::object();
      for (const auto& service : desired.services)
        if (!service.policy.empty()) services[service.address.to_string()] = service_policy_to_json(service.policy);
      return {reply(200, {{"access", access_lists_to_json(desired.access)},
                          {"events", event_settings_to_json(desired.events)},
                          {"services", services}})};
    }
    if (segments.size() != 3 || segments[2] != "access")
      return {failure(404, fmt::format("no such endpoint {}", request.path))};
    if (method == "GET") return {reply(200, access_lists_to_json(desired.access))};
    if (method != "PUT" && method != "DELETE") return not_allowed();
    Outcome outcome{{},
                    method == "PUT" ? "policy.access.set" : "policy.access.clear",
                    "access",
                    access_lists_to_json(desired.access),
                    {}};
    Config next = desired;
    next.access = {};
    if (method == "PUT") {
      auto body = parse_body(request);
      if (!body) return {failure(400, body.error().message), outcome.action, outcome.object};
      auto lists = parse_access_lists(*body, "");
      if (!lists) return {failure(400, lists.error().message), outcome.action, outcome.object};
      next.access = std::move(*lists);
    }
    outcome.after = access_lists_to_json(next.access);
    return commit(outcome, next, 200, outcome.after);
  }

  if (segments.size() < 2 || segments[1] != "services")
    return {failure(404, fmt::format("no such endpoint {}", request.path))};

  // /v1/services
  if (segments.size() == 2) {
    if (method == "GET") return {reply(200, config_to_json(desired)["services"])};
    if (method != "POST") return not_allowed();
    Outcome outcome{{}, "service.add", "", nullptr, {}};
    auto body = parse_body(request);
    if (!body) return {failure(400, body.error().message), outcome.action};
    auto spec = parse_service_json(*body, "");
    if (!spec) return {failure(400, spec.error().message), outcome.action};
    outcome.object = spec->address.to_string();
    Config next = desired;
    if (find_service(next, spec->address))
      return {failure(409, fmt::format("service {} already exists", outcome.object)), outcome.action, outcome.object};
    next.services.push_back(*spec);
    outcome.after = service_to_json(*spec);
    return commit(outcome, next, 201, outcome.after);
  }

  auto service_address = ServiceAddress::parse(segments[2]);
  if (!service_address) return {failure(400, fmt::format("service: {}", service_address.error().message))};
  const std::string service_name = service_address->to_string();
  Config next = desired;
  ServiceSpec* service = find_service(next, *service_address);

  // /v1/services/{service}
  if (segments.size() == 3) {
    if (method != "GET" && method != "DELETE") return not_allowed();
    const std::string action = method == "DELETE" ? "service.remove" : "";
    if (!service) return {failure(404, fmt::format("service {} does not exist", service_name)), action, service_name};
    if (method == "GET") return {reply(200, service_to_json(*service))};
    Outcome outcome{{}, action, service_name, service_to_json(*service), nullptr};
    next.services.erase(next.services.begin() + (service - next.services.data()));
    return commit(outcome, next, 200, {{"removed", service_name}});
  }
  // /v1/services/{service}/policy
  if (segments[3] == "policy" && segments.size() == 4) {
    if (method != "GET" && method != "PUT" && method != "DELETE") return not_allowed();
    const std::string action = method == "PUT" ? "policy.set" : method == "DELETE" ? "policy.clear" : "";
    if (!service) return {failure(404, fmt::format("service {} does not exist", service_name)), action, service_name};
    const json before = service_policy_to_json(service->policy);
    if (method == "GET") return {reply(200, before)};
    ServicePolicy policy;
    if (method == "PUT") {
      auto body = parse_body(request);
      if (!body) return {failure(400, body.error().message), action, service_name};
      auto parsed = parse_service_policy(*body, "");
      if (!parsed) return {failure(400, parsed.error().message), action, service_name};
      policy = std::move(*parsed);
    }
    service->policy = policy;
    if (auto status = check_policy_capacity(next); !status)
      return {failure(400, status.error().message), action, service_name};
    const json after = service_policy_to_json(policy);
    return commit({{}, action, service_name, before, after}, next, 200, after);
  }
  if (segments[3] != "backends" || segments.size() > 5)
    return {failure(404, fmt::format("no such endpoint {}", request.path))};

  // /v1/services/{service}/backends
  if (segments.size() == 4) {
    if (method != "GET" && method != "POST") return not_allowed();
    const std::string action = method == "POST" ? "backend.add" : "";
    if (!service) return {failure(404, fmt::format("service {} does not exist", service_name)), action, service_name};
    if (method == "GET") {
      auto status = backends_status(*service);
      if (!status) return {failure(500, status.error().message)};
      return {reply(200, *status)};
    }
    auto body = parse_body(request);
    if (!body) return {failure(400, body.error().message), action, service_name};
    auto backend = parse_backend_json(*body, "");
    if (!backend) return {failure(400, backend.error().message), action, service_name};
    const std::string object = fmt::format("{} {}", service_name, backend->endpoint.to_string());
    if (find_backend(*service, backend->endpoint))
      return {failure(409, fmt::format("backend {} already exists in service {}", backend->endpoint.to_string(),
                                       service_name)),
              action, object};
    service->backends.push_back(*backend);
    if (auto status = validate_service(*service); !status)
      return {failure(400, fmt::format("address: {}", status.error().message)), action, object};
    return commit({{}, action, object, nullptr, backend_to_json(*backend)}, next, 201, backend_to_json(*backend));
  }

  // /v1/services/{service}/backends/{backend}
  if (method != "GET" && method != "PATCH" && method != "DELETE") return not_allowed();
  const std::string action = method == "PATCH" ? "backend.update" : method == "DELETE" ? "backend.remove" : "";
  auto endpoint = Endpoint::parse(segments[4]);
  if (!endpoint) return {failure(400, fmt::format("backend: {}", endpoint.error().message)), action};
  const std::string object = fmt::format("{} {}", service_name, endpoint->to_string());
  if (!service) return {failure(404, fmt::format("service {} does not exist", service_name)), action, object};
  BackendSpec* backend = find_backend(*service, *endpoint);
  if (!backend)
    return {failure(404, fmt::format("backend {} is not in service {}", endpoint->to_string(), service_name)), action,
            object};
  const json before = backend_to_json(*backend);
  if (method == "GET") {
    ServiceSpec one = *service;
    one.backends = {*backend};
    auto status = backends_status(one);
    if (!status) return {failure(500, status.error().message)};
    return {reply(200, (*status)[0])};
  }
  if (method == "DELETE") {
    service->backends.erase(service->backends.begin() + (backend - service->backends.data()));
    return commit({{}, action, object, before, nullptr}, next, 200, {{"removed", object}});
  }
  auto body = parse_body(request);
  if (!body) return {failure(400, body.error().message), action, object};
  for (const auto& [key, value] : body->items())
    if (key != "weight" && key != "state")
      return {failure(400, fmt::format("{}: unknown field (expected weight or state)", key)), action, object};
  json merged = before;
  for (const auto& [key, value] : body->items()) merged[key] = value;
  auto updated = parse_backend_json(merged, "");
  if (!updated) return {failure(400, updated.error().message), action, object};
  *backend = *updated;
  return commit({{}, action, object, before, backend_to_json(*updated)}, next, 200, backend_to_json(*updated));
}

}  // namespace tollgate
