// tollgate service add|rm|list
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "address.h"
#include "commands.h"
#include "defaults.h"
#include "spec.h"

namespace tollgate::cli {
namespace {

// What add and set may give a service beside its address.
struct ServiceSettings {
  std::string scheduler;       // empty: the agent's default (add), unchanged (set)
  uint32_t source_prefix = 0;  // 0: all of the address (add), unchanged (set)
  uint32_t maglev_size = 0;    // 0: the agent's default (add), unchanged (set)

  void into(json& body) const {
    if (!scheduler.empty()) body["scheduler"] = scheduler;
    if (source_prefix) body["source_prefix"] = source_prefix;
    if (maglev_size) body["maglev_size"] = maglev_size;
  }
};

struct ServiceAddOptions {
  std::string service;
  std::vector<std::string> backends;
  ServiceSettings settings;
};

struct ServiceSetOptions {
  std::string service;
  ServiceSettings settings;
};

struct ServiceRmOptions {
  std::string service;
};

int do_service_add(Session& session, const ServiceAddOptions& options) {
  json body = {{"address", options.service}, {"backends", json::array()}};
  for (const auto& entry : options.backends) body["backends"].push_back({{"address", entry}});
  options.settings.into(body);
  auto reply = session.call("POST", "/v1/services", body);
  if (!reply) return 1;
  if (session.json_output())
    session.print_json(*reply);
  else
    session.out << "service " << text_of((*reply)["address"]) << " added\n";
  return 0;
}

int do_service_set(Session& session, const ServiceSetOptions& options) {
  json body = json::object();
  options.settings.into(body);
  if (body.empty()) {
    session.err << "tollgate: service set: nothing to change (give --scheduler, --source-prefix or --maglev-size)\n";
    return 2;
  }
  auto reply = session.call("PATCH", service_path(options.service), body);
  if (!reply) return 1;
  if (session.json_output())
    session.print_json(*reply);
  else
    session.out << "service " << ServiceAddress::parse(options.service)->to_string() << " set: scheduler "
                << text_of((*reply)["scheduler"]) << "\n";
  return 0;
}

int do_service_rm(Session& session, const ServiceRmOptions& options) {
  if (!session.call("DELETE", service_path(options.service))) return 1;
  session.out << "service " << ServiceAddress::parse(options.service)->to_string() << " removed\n";
  return 0;
}

int do_service_list(Session& session) {
  auto reply = session.call("GET", "/v1/services");
  if (!reply) return 1;
  if (session.json_output()) {
    session.print_json(*reply);
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"SERVICE", "BACKENDS", "UP", "SCHEDULER", "TABLE", "TABLE DIGEST"}};
  for (const auto& entry : *reply) {
    size_t up = 0;
    for (const auto& backend : entry["backends"]) up += backend["state"] == "up";
    rows.push_back(
        {text_of(entry["address"]), std::to_string(entry["backends"].size()), std::to_string(up),
         text_of(entry["scheduler"]) + (entry.contains("source_prefix") ? "/" + text_of(entry["source_prefix"]) : ""),
         text_of(entry["maglev_size"]), entry.contains("table_digest") ? text_of(entry["table_digest"]) : "-"});
  }
  print_table(session.out, rows);
  return 0;
}

void add_settings_options(CLI::App* command, ServiceSettings& settings, const char* otherwise) {
  std::string names;
  for (Scheduler scheduler : kSchedulers)
    names += fmt::format("{}{}", names.empty() ? "" : ", ", scheduler_name(scheduler));
  command
      ->add_option("--scheduler", settings.scheduler,
                   fmt::format("how new flows pick a backend: {} ({}: maglev)", names, otherwise))
      ->check([](const std::string& name) {
        auto scheduler = parse_scheduler(name);
        return scheduler ? std::string() : scheduler.error().message;
      });
  command
      ->add_option("--source-prefix", settings.source_prefix,
                   "source-hash: the leading bits of the client address that pick the backend (default: all)")
      ->check(CLI::Range(1u, 128u));
  command
      ->add_option("--maglev-size", settings.maglev_size,
                   fmt::format("entries in the service's table, a prime ({}: {})", otherwise, TG_MAGLEV_DEFAULT_SIZE))
      ->check(CLI::Range(2u, static_cast<uint32_t>(TG_MAGLEV_MAX_SIZE)));
}

}  // namespace

void register_service_commands(CLI::App& app, Dispatch& dispatch) {
  auto* service_cmd = app.add_subcommand("service", "add, change, remove and list services");

  auto* add = service_cmd->add_subcommand(
      "add",
      "add a service, optionally with backends\n"
      "Example: tollgate service add 198.18.100.1:80/tcp --backend 198.18.1.11:8080 --backend 198.18.1.12:8080");
  auto& add_options = dispatch.add(add, do_service_add);
  add->add_option("service", add_options.service, "ADDRESS:PORT/PROTOCOL (tcp or udp; port 0 = every port)")
      ->required()
      ->check(service_validator());
  add->add_option("--backend", add_options.backends, "a backend ADDRESS:PORT, weight 1 (repeatable)")
      ->check(backend_validator());
  add_settings_options(add, add_options.settings, "default");
  add_output_option(add, dispatch.session());

  auto* set = service_cmd->add_subcommand(
      "set",
      "change a service's scheduler or table; new flows follow it, tracked flows keep their backend\n"
      "Example: tollgate service set 198.18.100.1:80/tcp --scheduler source-hash --source-prefix 24");
  auto& set_options = dispatch.add(set, do_service_set);
  set->add_option("service", set_options.service, "ADDRESS:PORT/PROTOCOL")->required()->check(service_validator());
  add_settings_options(set, set_options.settings, "unchanged if not given");
  add_output_option(set, dispatch.session());

  auto* rm = service_cmd->add_subcommand(
      "rm", "remove a service and its backends; its flows end\nExample: tollgate service rm 198.18.100.1:80/tcp");
  auto& rm_options = dispatch.add(rm, do_service_rm);
  rm->add_option("service", rm_options.service, "ADDRESS:PORT/PROTOCOL")->required()->check(service_validator());

  auto* list = service_cmd->add_subcommand("list", "list services\nExample: tollgate service list -o json");
  dispatch.add(list, do_service_list);
  add_output_option(list, dispatch.session());
}

}  // namespace tollgate::cli
