// tollgate backend add|set|drain|rm|list
#include <CLI/CLI.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "address.h"
#include "commands.h"
#include "spec.h"

namespace tollgate::cli {
namespace {

// The service and backend every verb but list names.
struct BackendOptions {
  std::string service;
  std::string backend;
};

// add and set: a weight and a state, each only when given.
struct BackendChangeOptions : BackendOptions {
  uint32_t weight = 0;
  std::string state;
};

struct BackendDrainOptions : BackendOptions {
  bool wait = false;
  double timeout_seconds = 300;
};

struct BackendListOptions {
  std::string service;
};

void add_service_and_backend(CLI::App* command, BackendOptions& options) {
  command->add_option("service", options.service, "the service, ADDRESS:PORT/PROTOCOL")
      ->required()
      ->check(service_validator());
  command->add_option("backend", options.backend, "the backend, ADDRESS:PORT")->required()->check(backend_validator());
}

void add_weight_and_state(CLI::App* command, BackendChangeOptions& options) {
  command->add_option("--weight", options.weight, fmt::format("relative weight 1-{}", kMaxWeight))
      ->check(CLI::Range(1u, kMaxWeight));
  command->add_option("--state", options.state, "up, draining or down")
      ->check(CLI::IsMember({"up", "draining", "down"}));
}

// The weight and state given, as the API takes them.
json weight_and_state(const BackendChangeOptions& options) {
  json body = json::object();
  if (options.weight) body["weight"] = options.weight;
  if (!options.state.empty()) body["state"] = options.state;
  return body;
}

// A backend's health in a word or two: "healthy", "unhealthy (HTTP 503)",
// "ejected", "half-open", "-" (not checked, never ejected).
std::string health_text(const json& health) {
  const std::string check = health.value("check", "none");
  const std::string circuit = health.value("circuit", "closed");
  if (check == "unhealthy") return fmt::format("unhealthy ({})", health.value("last_check", ""));
  if (circuit == "open") return "ejected";
  if (circuit == "half_open") return "half-open";
  if (check == "none") return "-";
  return check;
}

// PATCHes the backend and says what it is now.
int update_backend(Session& session, const BackendOptions& options, const json& body, std::string_view done) {
  auto reply = session.call("PATCH", backend_path(options.service, options.backend), body);
  if (!reply) return 1;
  if (session.json_output())
    session.print_json(*reply);
  else
    session.out << "backend " << text_of((*reply)["address"]) << " " << done << ": weight "
                << text_of((*reply)["weight"]) << ", " << text_of((*reply)["state"]) << "\n";
  return 0;
}

int do_backend_add(Session& session, const BackendChangeOptions& options) {
  json body = {{"address", options.backend}};
  body.update(weight_and_state(options));
  auto reply = session.call("POST", service_path(options.service) + "/backends", body);
  if (!reply) return 1;
  if (session.json_output())
    session.print_json(*reply);
  else
    session.out << "backend " << text_of((*reply)["address"]) << " added, weight " << text_of((*reply)["weight"])
                << "\n";
  return 0;
}

int do_backend_set(Session& session, const BackendChangeOptions& options) {
  json body = weight_and_state(options);
  if (body.empty()) {
    session.err << "tollgate: backend set: give --weight or --state (or both)\n";
    return 2;
  }
  return update_backend(session, options, body, "changed");
}

int do_backend_drain(Session& session, const BackendDrainOptions& options) {
  if (int code = update_backend(session, options, {{"state", "draining"}}, "draining"); code != 0 || !options.wait)
    return code;
  // Wait on the condition (no active flows) with a deadline.
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(options.timeout_seconds));
  for (;;) {
    auto reply = session.call("GET", backend_path(options.service, options.backend));
    if (!reply) return 1;
    const uint64_t active = reply->value("active_flows", uint64_t{0});
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (active == 0) {
      session.out << fmt::format("backend {} drained: no active flows (waited {:.1f} s)\n",
                                 text_of((*reply)["address"]), waited);
      return 0;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      session.err << fmt::format("tollgate: backend drain: timeout after {:.1f} s: {} active flows remain on {}\n",
                                 waited, active, text_of((*reply)["address"]));
      return 1;
    }
    std::this_thread::sleep_until(
        std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(250)));
  }
}

int do_backend_rm(Session& session, const BackendOptions& options) {
  if (!session.call("DELETE", backend_path(options.service, options.backend))) return 1;
  session.out << "backend " << Endpoint::parse(options.backend)->to_string() << " removed from "
              << ServiceAddress::parse(options.service)->to_string() << "\n";
  return 0;
}

int do_backend_list(Session& session, const BackendListOptions& options) {
  auto reply = session.call("GET", service_path(options.service) + "/backends");
  if (!reply) return 1;
  if (session.json_output()) {
    session.print_json(*reply);
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"BACKEND", "WEIGHT", "STATE", "HEALTH", "ACTIVE"}};
  for (const auto& entry : *reply)
    rows.push_back({text_of(entry["address"]), text_of(entry["weight"]), text_of(entry["state"]),
                    health_text(entry.value("health", json::object())), text_of(entry.value("active_flows", 0))});
  print_table(session.out, rows);
  return 0;
}

}  // namespace

void register_backend_commands(CLI::App& app, Dispatch& dispatch) {
  auto* backend_cmd = app.add_subcommand("backend", "add, change, drain, remove and list a service's backends");

  auto* add =
      backend_cmd->add_subcommand("add",
                                  "add a backend to a service (weight 1 unless --weight)\n"
                                  "Example: tollgate backend add 198.18.100.1:80/tcp 198.18.1.14:8080 --weight 2");
  auto& add_options = dispatch.add(add, do_backend_add);
  add_service_and_backend(add, add_options);
  add_weight_and_state(add, add_options);
  add_output_option(add, dispatch.session());

  auto* set = backend_cmd->add_subcommand(
      "set",
      "change a backend's weight or state\n"
      "Example: tollgate backend set 198.18.100.1:80/tcp 198.18.1.11:8080 --weight 3 --state up");
  auto& set_options = dispatch.add(set, do_backend_set);
  add_service_and_backend(set, set_options);
  add_weight_and_state(set, set_options);
  add_output_option(set, dispatch.session());

  auto* drain = backend_cmd->add_subcommand("drain",
                                            "stop sending new flows to a backend; its established flows stay\n"
                                            "Example: tollgate backend drain 198.18.100.1:80/tcp 198.18.1.11:8080");
  auto& drain_options = dispatch.add(drain, do_backend_drain);
  add_service_and_backend(drain, drain_options);
  add_output_option(drain, dispatch.session());
  drain->add_flag("--wait", drain_options.wait, "return when the backend has no active flows left");
  drain->add_option("--timeout", drain_options.timeout_seconds, "with --wait: give up after SECONDS (default 300)")
      ->check(CLI::Range(0.0, 86400.0));

  auto* rm = backend_cmd->add_subcommand("rm",
                                         "remove a backend; its flows move to the others\n"
                                         "Example: tollgate backend rm 198.18.100.1:80/tcp 198.18.1.11:8080");
  auto& rm_options = dispatch.add(rm, do_backend_rm);
  add_service_and_backend(rm, rm_options);

  auto* list = backend_cmd->add_subcommand(
      "list", "list a service's backends\nExample: tollgate backend list 198.18.100.1:80/tcp");
  auto& list_options = dispatch.add(list, do_backend_list);
  list->add_option("service", list_options.service, "the service, ADDRESS:PORT/PROTOCOL")
      ->required()
      ->check(service_validator());
  add_output_option(list, dispatch.session());
}

}  // namespace tollgate::cli
