#include "api.h"

#include <unistd.h>

#include <algorithm>

#include "flows.h"
#include "json_text.h"
#include "maglev.h"
#include "metrics.h"
#include "report.h"

namespace tollgate {

using nlohmann::json;

struct Api::Outcome {
  HttpResponse response;
  std::string action;  // set for mutations (audited); reads leave it empty
  std::string object;
  json before;
  json after;
};

// One request as a route's handler sees it.
struct Api::Call {
  const HttpRequest& request;
  std::map<std::string, std::string> params;  // {service}, {backend}: decoded
  json actor;
  std::shared_ptr<const Snapshot> snapshot;
};

struct Api::Route {
  std::string method;
  std::vector<std::string> pattern;  // "{name}" matches one segment
  Outcome (Api::*handler)(const Call&);
};

namespace {

// Messages may carry a client's bytes (a path that is not UTF-8): the dump
// replaces what is invalid rather than throw.
HttpResponse reply(int status, const json& body) { return {status, dump_json(body, 2) + "\n"}; }
HttpResponse failure(int status, const std::string& message) { return reply(status, {{"error", message}}); }

int http_status(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::invalid: return 400;
    case ErrorKind::not_found: return 404;
    case ErrorKind::conflict:
    case ErrorKind::capacity: return 409;
    case ErrorKind::internal:
    case ErrorKind::kernel:
    case ErrorKind::io: break;
  }
  return 500;
}

HttpResponse failure(const Error& error) { return failure(http_status(error.kind), error.message); }

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

// A byte-order mark is refused, not skipped (parse_json_text): RFC 8259
// forbids one on the wire, and a client that sends one has likely mangled
// the text in other ways too (the case that found this: "\uFEFF{}", a
// config whose content was lost).
Result<json> parse_body(const HttpRequest& request) {
  if (request.body.empty()) return make_error(ErrorKind::invalid, "body: expected a JSON object");
  auto body = parse_json_text(request.body);
  if (!body) return make_error(ErrorKind::invalid, "body: {}", body.error().message);
  if (!body->is_object()) return make_error(ErrorKind::invalid, "body: expected a JSON object");
  return body;
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

BackendSpec* find_backend(ServiceSpec& service, const Endpoint& endpoint) {
  for (auto& backend : service.backends)
    if (backend.endpoint == endpoint) return &backend;
  return nullptr;
}

// The number `name`=N in `query`; absent: `fallback`; not a number in
// `minimum`..999999999: an error.
Result<size_t> query_number(const std::string& query, std::string_view name, size_t fallback, size_t minimum) {
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    std::string_view item(query.data() + start, end - start);
    if (item.starts_with(name) && item.size() > name.size() && item[name.size()] == '=') {
      std::string_view value = item.substr(name.size() + 1);
      if (value.empty() || value.size() > 9 || value.find_first_not_of("0123456789") != std::string_view::npos ||
          std::stoul(std::string(value)) < minimum)
        return make_error(ErrorKind::invalid, "{}: expected an integer {}-999999999", name, minimum);
      return std::stoul(std::string(value));
    }
    start = end + 1;
  }
  return fallback;
}

// The flag `name`=true|false in `query`; absent: false.
Result<bool> query_flag(const std::string& query, std::string_view name) {
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    std::string_view item(query.data() + start, end - start);
    if (item == name) return make_error(ErrorKind::invalid, "{}: expected true or false", name);
    if (item.starts_with(name) && item.size() > name.size() && item[name.size()] == '=') {
      std::string_view value = item.substr(name.size() + 1);
      if (value == "true") return true;
      if (value == "false") return false;
      return make_error(ErrorKind::invalid, "{}: expected true or false", name);
    }
    start = end + 1;
  }
  return false;
}

// Parses a body with `parse` (a config codec taking (json, path)).
template <typename Parse>
auto parse_with(const HttpRequest& request, Parse parse) -> decltype(parse(json{}, std::string{})) {
  auto body = parse_body(request);
  if (!body) return body.error();
  auto parsed = parse(*body, std::string{});
  if (!parsed) return Error{parsed.error().message, ErrorKind::invalid};
  return parsed;
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
         const EventMonitor* events, const HttpServerCounters* connections, const FlowSweeper* sweeper)
    : controller_(controller),
      audit_(audit),
      access_(std::move(access)),
      info_(std::move(info)),
      health_(health),
      events_(events),
      connections_(connections),
      sweeper_(sweeper) {}

Result<json> Api::backends_status(const Snapshot& snapshot, const ServiceSpec& service) const {
  auto active = active_flow_counts(controller_.maps());
  if (!active) return active.error();
  const auto health = health_ ? health_->snapshot() : std::map<BackendKey, BackendHealth>{};
  json out = json::array();
  for (const auto& backend : service.backends) {
    const BackendKey key{service.address, backend.endpoint};
    json entry = backend_to_json(backend);
    auto index = snapshot.backend_index(service.address, backend.endpoint);
    auto count = index ? active->find(*index) : active->end();
    entry["active_flows"] = count == active->end() ? 0 : count->second;
    entry["selectable"] = snapshot.selectable(service.address, backend);
    auto found = health.find(key);
    BackendHealth status = found == health.end() ? BackendHealth{} : found->second;
    status.held_down = snapshot.held_down.contains(key);
    entry["health"] = status.to_json();
    out.push_back(std::move(entry));
  }
  return out;
}

namespace {

// The "error" of a refusal's body, for the audit log ("" if it has none).
std::string error_of(const HttpResponse& response) {
  auto body = parse_json_text(response.body);
  if (!body || !body->is_object() || !body->contains("error") || !(*body)["error"].is_string()) return "";
  return (*body)["error"].get<std::string>();
}

}  // namespace

void Api::audit_rejected(const Caller& caller, const HttpResponse& response) {
  audit_.record({{"action", "request"},
                 {"actor", {{"source", "api"}, {"caller", caller.to_json()}}},
                 {"result", result_name(response.status)},
                 {"status", response.status},
                 {"error", error_of(response)}});
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
  Outcome outcome = dispatch(request);
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
      entry["error"] = error_of(outcome.response);
    }
    audit_.record(entry);
  }
  return outcome.response;
}

const std::vector<Api::Route>& Api::routes() {
  static const std::vector<Route> table = {
      {"GET", {"v1", "status"}, &Api::get_status},
      {"GET", {"v1", "config"}, &Api::get_config},
      {"PUT", {"v1", "config"}, &Api::put_config},
      {"GET", {"v1", "metrics"}, &Api::get_metrics},
      {"GET", {"v1", "stats"}, &Api::get_stats},
      {"GET", {"v1", "conntrack"}, &Api::get_conntrack},
      {"DELETE", {"v1", "conntrack"}, &Api::delete_conntrack},
      {"GET", {"v1", "events"}, &Api::get_events},
      {"GET", {"v1", "policy"}, &Api::get_policy},
      {"GET", {"v1", "policy", "access"}, &Api::get_access},
      {"PUT", {"v1", "policy", "access"}, &Api::set_access},
      {"DELETE", {"v1", "policy", "access"}, &Api::set_access},
      {"GET", {"v1", "services"}, &Api::list_services},
      {"POST", {"v1", "services"}, &Api::add_service},
      {"GET", {"v1", "services", "{service}"}, &Api::get_service},
      {"PATCH", {"v1", "services", "{service}"}, &Api::update_service},
      {"DELETE", {"v1", "services", "{service}"}, &Api::remove_service},
      {"GET", {"v1", "services", "{service}", "policy"}, &Api::get_service_policy},
      {"PUT", {"v1", "services", "{service}", "policy"}, &Api::set_service_policy},
      {"DELETE", {"v1", "services", "{service}", "policy"}, &Api::set_service_policy},
      {"GET", {"v1", "services", "{service}", "backends"}, &Api::list_backends},
      {"POST", {"v1", "services", "{service}", "backends"}, &Api::add_backend},
      {"GET", {"v1", "services", "{service}", "backends", "{backend}"}, &Api::get_backend},
      {"PATCH", {"v1", "services", "{service}", "backends", "{backend}"}, &Api::update_backend},
      {"DELETE", {"v1", "services", "{service}", "backends", "{backend}"}, &Api::remove_backend},
  };
  return table;
}

namespace {

// What a mutation on `path` is audited as when it fails before its handler.
std::string action_of(const std::string& method, const std::vector<std::string>& pattern) {
  static const std::map<std::pair<std::string, std::string>, std::string> actions = {
      {{"PUT", "config"}, "config.replace"},      {{"DELETE", "conntrack"}, "conntrack.flush"},
      {{"PUT", "access"}, "policy.access.set"},   {{"DELETE", "access"}, "policy.access.clear"},
      {{"POST", "services"}, "service.add"},      {{"DELETE", "{service}"}, "service.remove"},
      {{"PATCH", "{service}"}, "service.update"}, {{"PUT", "policy"}, "policy.set"},
      {{"DELETE", "policy"}, "policy.clear"},     {{"POST", "backends"}, "backend.add"},
      {{"PATCH", "{backend}"}, "backend.update"}, {{"DELETE", "{backend}"}, "backend.remove"},
  };
  auto found = actions.find({method, pattern.back()});
  return found == actions.end() ? "" : found->second;
}

}  // namespace

Api::Outcome Api::dispatch(const HttpRequest& request) {
  std::vector<std::string> segments;
  for (const auto& segment : split_path(request.path)) {
    auto decoded = percent_decode(segment);
    if (!decoded) return {failure(400, fmt::format("path: {}", decoded.error().message))};
    segments.push_back(*decoded);
  }
  if (segments.empty() || segments[0] != "v1")
    return {failure(404, fmt::format("no such endpoint {}; the API lives under /v1", request.path))};
  bool path_known = false;
  for (const auto& route : routes()) {
    if (route.pattern.size() != segments.size()) continue;
    Call call{request, {}, {{"source", "api"}, {"caller", request.caller.to_json()}}, nullptr};
    bool match = true;
    for (size_t i = 0; i < segments.size() && match; ++i) {
      if (route.pattern[i].starts_with('{'))
        call.params[route.pattern[i]] = segments[i];
      else
        match = route.pattern[i] == segments[i];
    }
    if (!match) continue;
    path_known = true;
    if (route.method != request.method) continue;
    const std::string action = action_of(route.method, route.pattern);
    // The names in the path, checked before the handler.
    std::string object;
    if (auto service = call.params.find("{service}"); service != call.params.end()) {
      auto address = ServiceAddress::parse(service->second);
      if (!address) return {failure(400, fmt::format("service: {}", address.error().message)), action};
      service->second = address->to_string();
      object = service->second;
    }
    if (auto backend = call.params.find("{backend}"); backend != call.params.end()) {
      auto endpoint = Endpoint::parse(backend->second);
      if (!endpoint) return {failure(400, fmt::format("backend: {}", endpoint.error().message)), action};
      backend->second = endpoint->to_string();
      object = fmt::format("{} {}", object, backend->second);
    }
    call.snapshot = controller_.snapshot();
    Outcome outcome = (this->*route.handler)(call);
    if (outcome.action.empty()) outcome.action = action;
    if (outcome.object.empty()) outcome.object = object;
    return outcome;
  }
  if (path_known) return {failure(405, fmt::format("{} is not allowed on {}", request.method, request.path))};
  return {failure(404, fmt::format("no such endpoint {}", request.path))};
}

namespace {

ServiceAddress service_param(const Api::Call& call) { return *ServiceAddress::parse(call.params.at("{service}")); }
Endpoint backend_param(const Api::Call& call) { return *Endpoint::parse(call.params.at("{backend}")); }

Error no_service(const ServiceAddress& address) {
  return make_error(ErrorKind::not_found, "service {} does not exist", address.to_string());
}

// A service as asked for, and the digest of the table the data path holds
// for it (none before it is applied).
json service_view(const ServiceEntry& entry) {
  json out = service_to_json(entry.desired);
  if (entry.slots) out["table_digest"] = maglev_digest_text(entry.slots->table_digest);
  return out;
}

}  // namespace

Api::Outcome Api::get_status(const Call& call) {
  const Snapshot& state = *call.snapshot;
  size_t backends = 0;
  for (const auto& entry : state.services.entries()) backends += entry->desired.backends.size();
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
                      {"interfaces", {{"xdp", state.settings.xdp_interfaces}, {"tc", state.settings.tc_interfaces}}},
                      {"flow_capacity", info_.flow_capacity},
                      {"services", state.services.size()},
                      {"backends", backends}})};
}

Api::Outcome Api::get_config(const Call& call) { return {reply(200, config_to_json(call.snapshot->desired()))}; }

Api::Outcome Api::put_config(const Call& call) {
  Outcome outcome{{}, "", "config", config_to_json(call.snapshot->desired()), {}};
  auto body = parse_body(call.request);
  if (!body) return {failure(body.error()), "", outcome.object};
  auto next = parse_config_json(*body);
  if (!next) return {failure(400, next.error().message), "", outcome.object};
  auto allow_empty = query_flag(call.request.query, "allow_empty");
  if (!allow_empty) return {failure(allow_empty.error()), "", outcome.object};
  // Checked on this snapshot: a service added meanwhile is removed too, as
  // any PUT of the whole config replaces what came before it.
  if (!*allow_empty)
    if (auto status = check_not_emptying(*next, call.snapshot->services.size(),
                                         "to remove them all, PUT it with ?allow_empty=true");
        !status)
      return {failure(status.error()), "", outcome.object};
  outcome.after = config_to_json(*next);
  if (auto status = controller_.apply(*next, call.actor); !status) return {failure(status.error()), "", outcome.object};
  outcome.response = reply(200, outcome.after);
  return outcome;
}

Result<std::string> Api::metrics() const {
  auto text = prometheus_metrics(controller_, health_, events_);
  if (!text) return text.error();
  if (connections_) *text += api_connection_metrics(*connections_);
  if (sweeper_) *text += swept_flows_metric(sweeper_->swept());
  *text += build_info_metric(info_.version);
  return text;
}

Api::Outcome Api::get_metrics(const Call&) {
  auto text = metrics();
  if (!text) return {failure(text.error())};
  return {HttpResponse{200, *text, "text/plain; version=0.0.4"}};
}

Api::Outcome Api::get_stats(const Call& call) { return {reply(200, stats_report(*call.snapshot, controller_.maps()))}; }

Api::Outcome Api::get_conntrack(const Call& call) {
  auto limit = query_number(call.request.query, "limit", 1000, 1);
  if (!limit) return {failure(limit.error())};
  auto flows = list_flows(*call.snapshot->backend_by_index, controller_.maps(), *limit);
  if (!flows) return {failure(flows.error())};
  return {reply(200, *flows)};
}

Api::Outcome Api::delete_conntrack(const Call&) {
  auto flushed = flush_flows(controller_.maps());
  if (!flushed) return {failure(flushed.error()), "", "conntrack"};
  return {reply(200, {{"flushed", *flushed}}), "", "conntrack", nullptr, {{"flushed", *flushed}}};
}

Api::Outcome Api::get_events(const Call& call) {
  if (!events_) return {failure(404, "this agent does not read data path events")};
  auto after = query_number(call.request.query, "after", 0, 0);
  if (!after) return {failure(after.error())};
  auto limit = query_number(call.request.query, "limit", 1000, 1);
  if (!limit) return {failure(limit.error())};
  return {reply(200, events_->since(*after, *limit))};
}

Api::Outcome Api::get_policy(const Call& call) {
  const Snapshot& snapshot = *call.snapshot;
  json services = json::object();
  for (const auto& entry : snapshot.services.entries())
    if (const ServiceSpec& service = entry->desired; !service.policy.empty())
      services[service.address.to_string()] = service_policy_to_json(service.policy);
  return {reply(200, {{"access", access_lists_to_json(snapshot.settings.access)},
                      {"events", event_settings_to_json(snapshot.settings.events)},
                      {"services", services}})};
}

Api::Outcome Api::get_access(const Call& call) {
  return {reply(200, access_lists_to_json(call.snapshot->settings.access))};
}

Api::Outcome Api::set_access(const Call& call) {
  Outcome outcome{{}, "", "access", nullptr, {}};
  AccessLists lists;
  if (call.request.method == "PUT") {
    auto parsed = parse_with(call.request, parse_access_lists);
    if (!parsed) return {failure(parsed.error()), "", outcome.object};
    lists = std::move(*parsed);
  }
  Status status = controller_.edit_globals(
      [&](Settings& settings) {
        outcome.before = access_lists_to_json(settings.access);
        settings.access = lists;
        return Status{};
      },
      call.actor);
  if (!status) return {failure(status.error()), "", outcome.object};
  outcome.after = access_lists_to_json(lists);
  outcome.response = reply(200, outcome.after);
  return outcome;
}

Api::Outcome Api::list_services(const Call& call) {
  json services = json::array();
  for (const auto& entry : call.snapshot->services.entries()) services.push_back(service_view(*entry));
  return {reply(200, services)};
}

Api::Outcome Api::add_service(const Call& call) {
  auto spec = parse_with(call.request, parse_service_json);
  if (!spec) return {failure(spec.error())};
  const std::string object = spec->address.to_string();
  Status status = controller_.edit_service(
      spec->address,
      [&](std::optional<ServiceSpec>& service) -> Status {
        if (service) return make_error(ErrorKind::conflict, "service {} already exists", object);
        service = *spec;
        return {};
      },
      call.actor);
  if (!status) return {failure(status.error()), "", object};
  return {reply(201, service_to_json(*spec)), "", object, nullptr, service_to_json(*spec)};
}

Api::Outcome Api::get_service(const Call& call) {
  const ServiceEntry* entry = call.snapshot->services.find(service_param(call));
  if (!entry) return {failure(no_service(service_param(call)))};
  return {reply(200, service_view(*entry))};
}

Api::Outcome Api::remove_service(const Call& call) {
  const ServiceAddress address = service_param(call);
  json before;
  Status status = controller_.edit_service(
      address,
      [&](std::optional<ServiceSpec>& service) -> Status {
        if (!service) return no_service(address);
        before = service_to_json(*service);
        service.reset();
        return {};
      },
      call.actor);
  if (!status) return {failure(status.error())};
  return {reply(200, {{"removed", address.to_string()}}), "", "", before, nullptr};
}

Api::Outcome Api::get_service_policy(const Call& call) {
  const ServiceSpec* service = call.snapshot->service(service_param(call));
  if (!service) return {failure(no_service(service_param(call)))};
  return {reply(200, service_policy_to_json(service->policy))};
}

Api::Outcome Api::set_service_policy(const Call& call) {
  const ServiceAddress address = service_param(call);
  ServicePolicy policy;
  if (call.request.method == "PUT") {
    auto parsed = parse_with(call.request, parse_service_policy);
    if (!parsed) return {failure(parsed.error())};
    policy = std::move(*parsed);
  }
  json before;
  Status status = controller_.edit_service(
      address,
      [&](std::optional<ServiceSpec>& service) -> Status {
        if (!service) return no_service(address);
        before = service_policy_to_json(service->policy);
        service->policy = policy;
        return {};
      },
      call.actor);
  if (!status) return {failure(status.error())};
  const json after = service_policy_to_json(policy);
  return {reply(200, after), "", "", before, after};
}

// The fields of a service a PATCH changes; its backends and policy have their own endpoints.
constexpr const char* kServiceSettings[] = {"scheduler", "source_prefix", "maglev_size"};

Api::Outcome Api::update_service(const Call& call) {
  auto body = parse_body(call.request);
  if (!body) return {failure(body.error())};
  if (!body->is_object() || body->empty())
    return {failure(400, "body: nothing to change (expected scheduler, source_prefix or maglev_size)")};
  for (const auto& [key, value] : body->items())
    if (std::find(std::begin(kServiceSettings), std::end(kServiceSettings), key) == std::end(kServiceSettings))
      return {failure(400, fmt::format("{}: unknown field (expected scheduler, source_prefix or maglev_size)", key))};
  const ServiceAddress address = service_param(call);
  json before, after;
  Status status = controller_.edit_service(
      address,
      [&](std::optional<ServiceSpec>& service) -> Status {
        if (!service) return no_service(address);
        json merged = service_to_json(*service);
        for (const char* key : kServiceSettings) before[key] = merged.value(key, json());
        for (const auto& [key, value] : body->items()) merged[key] = value;
        // A prefix belongs to source-hash: leaving it, the prefix goes too.
        if (body->contains("scheduler") && !body->contains("source_prefix") &&
            merged["scheduler"] != scheduler_name(Scheduler::source_hash))
          merged.erase("source_prefix");
        auto updated = parse_service_json(merged, "");
        if (!updated) return Error{updated.error().message, ErrorKind::invalid};
        service->scheduler = updated->scheduler;
        service->source_prefix = updated->source_prefix;
        service->maglev_size = updated->maglev_size;
        const json now = service_to_json(*service);
        for (const char* key : kServiceSettings) after[key] = now.value(key, json());
        return {};
      },
      call.actor);
  if (!status) return {failure(status.error())};
  return {reply(200, after), "", "", before, after};
}

Api::Outcome Api::list_backends(const Call& call) {
  const ServiceSpec* service = call.snapshot->service(service_param(call));
  if (!service) return {failure(no_service(service_param(call)))};
  auto status = backends_status(*call.snapshot, *service);
  if (!status) return {failure(status.error())};
  return {reply(200, *status)};
}

Api::Outcome Api::add_backend(const Call& call) {
  const ServiceAddress address = service_param(call);
  if (!call.snapshot->service(address)) return {failure(no_service(address))};
  auto backend = parse_with(call.request, parse_backend_json);
  if (!backend) return {failure(backend.error())};
  const std::string object = fmt::format("{} {}", address.to_string(), backend->endpoint.to_string());
  Status status = controller_.edit_service(
      address,
      [&](std::optional<ServiceSpec>& service) -> Status {
        if (!service) return no_service(address);
        if (find_backend(*service, backend->endpoint))
          return make_error(ErrorKind::conflict, "backend {} already exists in service {}",
                            backend->endpoint.to_string(), address.to_string());
        service->backends.push_back(*backend);
        return {};
      },
      call.actor);
  if (!status) return {failure(status.error()), "", object};
  return {reply(201, backend_to_json(*backend)), "", object, nullptr, backend_to_json(*backend)};
}

Api::Outcome Api::get_backend(const Call& call) {
  const ServiceAddress address = service_param(call);
  const Endpoint endpoint = backend_param(call);
  const ServiceSpec* service = call.snapshot->service(address);
  if (!service) return {failure(no_service(address))};
  ServiceSpec one = *service;
  BackendSpec* backend = find_backend(one, endpoint);
  if (!backend)
    return {failure(404, fmt::format("backend {} is not in service {}", endpoint.to_string(), address.to_string()))};
  one.backends = {*backend};
  auto status = backends_status(*call.snapshot, one);
  if (!status) return {failure(status.error())};
  return {reply(200, (*status)[0])};
}

namespace {

// Finds the backend of `call` in `service` for an edit.
Result<BackendSpec*> backend_for_edit(const Api::Call& call, std::optional<ServiceSpec>& service) {
  const ServiceAddress address = service_param(call);
  const Endpoint endpoint = backend_param(call);
  if (!service) return no_service(address);
  BackendSpec* backend = find_backend(*service, endpoint);
  if (!backend)
    return make_error(ErrorKind::not_found, "backend {} is not in service {}", endpoint.to_string(),
                      address.to_string());
  return backend;
}

}  // namespace

Api::Outcome Api::update_backend(const Call& call) {
  auto body = parse_body(call.request);
  if (!body) return {failure(body.error())};
  if (body->empty()) return {failure(400, "body: nothing to change (expected weight or state)")};
  for (const auto& [key, value] : body->items())
    if (key != "weight" && key != "state")
      return {failure(400, fmt::format("{}: unknown field (expected weight or state)", key))};
  json before, after;
  Status status = controller_.edit_service(
      service_param(call),
      [&](std::optional<ServiceSpec>& service) -> Status {
        auto backend = backend_for_edit(call, service);
        if (!backend) return backend.error();
        before = backend_to_json(**backend);
        json merged = before;
        for (const auto& [key, value] : body->items()) merged[key] = value;
        auto updated = parse_backend_json(merged, "");
        if (!updated) return Error{updated.error().message, ErrorKind::invalid};
        **backend = *updated;
        after = backend_to_json(*updated);
        return {};
      },
      call.actor);
  if (!status) return {failure(status.error())};
  return {reply(200, after), "", "", before, after};
}

Api::Outcome Api::remove_backend(const Call& call) {
  json before;
  Status status = controller_.edit_service(
      service_param(call),
      [&](std::optional<ServiceSpec>& service) -> Status {
        auto backend = backend_for_edit(call, service);
        if (!backend) return backend.error();
        before = backend_to_json(**backend);
        service->backends.erase(service->backends.begin() + (*backend - service->backends.data()));
        return {};
      },
      call.actor);
  if (!status) return {failure(status.error())};
  return {reply(200, {{"removed", fmt::format("{} {}", call.params.at("{service}"), call.params.at("{backend}"))}}), "",
          "", before, nullptr};
}

}  // namespace tollgate
