#include "cli.h"

#include <httplib.h>
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "address.h"
#include "defaults.h"
#include "policy.h"
#include "spec.h"

namespace tollgate::cli {
namespace {

using nlohmann::json;

// CLI11 validators: the message names what is wrong; CLI11 adds the name
// of the argument.
CLI::Validator service_validator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        auto address = ServiceAddress::parse(text);
        return address ? std::string() : address.error().message;
      },
      "SERVICE", "service address");
}

CLI::Validator cidr_validator() {
  return CLI::Validator(
      [](std::string& text) {
        auto parsed = Cidr::parse(text);
        return parsed ? std::string() : parsed.error().message;
      },
      "CIDR");
}

CLI::Validator backend_validator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        auto endpoint = Endpoint::parse(text);
        if (!endpoint) return endpoint.error().message;
        if (endpoint->port == 0) return "port 0 is not a backend port";
        return {};
      },
      "BACKEND", "backend address");
}

// One table for people: columns padded to their widest cell.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i)
      line += i + 1 == row.size() ? row[i] : fmt::format("{:<{}}  ", row[i], widths[i]);
    out << line << "\n";
  }
}

std::string text_of(const json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

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

struct Session {
  std::string socket_path = kDefaultSocketPath;
  std::string output = "table";
  const std::function<Transport(const std::string&)>& connect;
  std::ostream& out;
  std::ostream& err;

  // Sends; on success returns the body as JSON, else prints why.
  std::optional<json> call(const std::string& method, const std::string& path, const json& body = nullptr) {
    auto reply = connect(socket_path)(method, path, body.is_null() ? std::string() : body.dump());
    if (!reply) {
      err << "tollgate: cannot reach tollgated at " << socket_path << ": " << reply.error().message << "\n";
      return std::nullopt;
    }
    json document = json::parse(reply->body, nullptr, false);
    if (reply->status >= 400) {
      std::string message =
          document.is_object() && document.contains("error") ? text_of(document["error"]) : reply->body;
      err << "tollgate: " << message << " (HTTP " << reply->status << ")\n";
      return std::nullopt;
    }
    if (document.is_discarded()) {
      err << "tollgate: the agent answered with something that is not JSON\n";
      return std::nullopt;
    }
    return document;
  }

  bool json_output() const { return output == "json"; }
  void print_json(const json& document) { out << document.dump(2) << "\n"; }
};

std::string service_path(const std::string& service) {
  return "/v1/services/" + encode_segment(ServiceAddress::parse(service)->to_string());
}
std::string backend_path(const std::string& service, const std::string& backend) {
  return service_path(service) + "/backends/" + encode_segment(Endpoint::parse(backend)->to_string());
}

void add_output_option(CLI::App* command, Session& session) {
  command->add_option("-o,--output", session.output, "table (default) or json")
      ->check(CLI::IsMember({"table", "json"}));
}

}  // namespace

std::string encode_segment(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
      out.push_back(static_cast<char>(c));
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

Transport unix_socket_transport(const std::string& socket_path) {
  return [socket_path](const std::string& method, const std::string& path, const std::string& body) -> Result<Reply> {
    httplib::Client client(socket_path);
    client.set_address_family(AF_UNIX);
    client.set_connection_timeout(5);
    client.set_read_timeout(60);
    client.set_write_timeout(10);
    const char* type = "application/json";
    auto send = [&]() {
      if (method == "POST") return client.Post(path.c_str(), body, type);
      if (method == "PUT") return client.Put(path.c_str(), body, type);
      if (method == "PATCH") return client.Patch(path.c_str(), body, type);
      if (method == "DELETE") return client.Delete(path.c_str());
      return client.Get(path.c_str());
    };
    httplib::Result result = send();
    if (!result) return make_error("{}", httplib::to_string(result.error()));
    return Reply{result->status, result->body};
  };
}

int run(int argc, const char* const* argv, const std::function<Transport(const std::string&)>& connect,
        std::ostream& out, std::ostream& err) {
  Session session{kDefaultSocketPath, "table", connect, out, err};
  CLI::App app{
      "tollgate: control the tollgate L4 load balancer through tollgated's API.\n"
      "Example: tollgate backend add 198.18.100.1:80/tcp 198.18.1.11:8080 --weight 2"};
  app.name("tollgate");
  app.add_option("--socket", session.socket_path, "tollgated's API socket (default /run/tollgate/tollgate.sock)");

  std::string service, backend;
  std::vector<std::string> backends;
  uint32_t maglev_size = 0;
  uint32_t weight = 0;
  std::string state;
  size_t limit = 1000;
  std::function<int()> action;

  // service add|rm|list
  auto* service_cmd = app.add_subcommand("service", "add, remove and list services");
  auto* service_add = service_cmd->add_subcommand(
      "add",
      "add a service, optionally with backends\n"
      "Example: tollgate service add 198.18.100.1:80/tcp --backend 198.18.1.11:8080 --backend 198.18.1.12:8080");
  service_add->add_option("service", service, "ADDRESS:PORT/PROTOCOL (tcp or udp; port 0 = every port)")
      ->required()
      ->check(service_validator());
  service_add->add_option("--backend", backends, "a backend ADDRESS:PORT, weight 1 (repeatable)")
      ->check(backend_validator());
  service_add
      ->add_option("--maglev-size", maglev_size,
                   fmt::format("entries in the Maglev table, a prime (default {})", TG_MAGLEV_DEFAULT_SIZE))
      ->check(CLI::Range(2u, static_cast<uint32_t>(TG_MAGLEV_MAX_SIZE)));
  add_output_option(service_add, session);
  service_add->callback([&] {
    action = [&] {
      json body = {{"address", service}, {"backends", json::array()}};
      for (const auto& entry : backends) body["backends"].push_back({{"address", entry}});
      if (maglev_size) body["maglev_size"] = maglev_size;
      auto reply = session.call("POST", "/v1/services", body);
      if (!reply) return 1;
      if (session.json_output())
        session.print_json(*reply);
      else
        out << "service " << text_of((*reply)["address"]) << " added\n";
      return 0;
    };
  });
  auto* service_rm = service_cmd->add_subcommand(
      "rm", "remove a service and its backends; its flows end\nExample: tollgate service rm 198.18.100.1:80/tcp");
  service_rm->add_option("service", service, "ADDRESS:PORT/PROTOCOL")->required()->check(service_validator());
  service_rm->callback([&] {
    action = [&] {
      if (!session.call("DELETE", service_path(service))) return 1;
      out << "service " << ServiceAddress::parse(service)->to_string() << " removed\n";
      return 0;
    };
  });
  auto* service_list = service_cmd->add_subcommand("list", "list services\nExample: tollgate service list -o json");
  add_output_option(service_list, session);
  service_list->callback([&] {
    action = [&] {
      auto reply = session.call("GET", "/v1/services");
      if (!reply) return 1;
      if (session.json_output()) {
        session.print_json(*reply);
        return 0;
      }
      std::vector<std::vector<std::string>> rows{{"SERVICE", "BACKENDS", "UP", "MAGLEV"}};
      for (const auto& entry : *reply) {
        size_t up = 0;
        for (const auto& b : entry["backends"]) up += b["state"] == "up";
        rows.push_back({text_of(entry["address"]), std::to_string(entry["backends"].size()), std::to_string(up),
                        text_of(entry["maglev_size"])});
      }
      print_table(out, rows);
      return 0;
    };
  });

  // backend add|set|drain|rm|list
  auto* backend_cmd = app.add_subcommand("backend", "add, change, drain, remove and list a service's backends");
  auto add_pair = [&](CLI::App* command) {
    command->add_option("service", service, "the service, ADDRESS:PORT/PROTOCOL")
        ->required()
        ->check(service_validator());
    command->add_option("backend", backend, "the backend, ADDRESS:PORT")->required()->check(backend_validator());
  };
  auto add_weight_state = [&](CLI::App* command) {
    command->add_option("--weight", weight, fmt::format("relative weight 1-{}", kMaxWeight))
        ->check(CLI::Range(1u, kMaxWeight));
    command->add_option("--state", state, "up, draining or down")->check(CLI::IsMember({"up", "draining", "down"}));
  };
  auto* backend_add =
      backend_cmd->add_subcommand("add",
                                  "add a backend to a service (weight 1 unless --weight)\n"
                                  "Example: tollgate backend add 198.18.100.1:80/tcp 198.18.1.14:8080 --weight 2");
  add_pair(backend_add);
  add_weight_state(backend_add);
  add_output_option(backend_add, session);
  backend_add->callback([&] {
    action = [&] {
      json body = {{"address", backend}};
      if (weight) body["weight"] = weight;
      if (!state.empty()) body["state"] = state;
      auto reply = session.call("POST", service_path(service) + "/backends", body);
      if (!reply) return 1;
      if (session.json_output())
        session.print_json(*reply);
      else
        out << "backend " << text_of((*reply)["address"]) << " added, weight " << text_of((*reply)["weight"]) << "\n";
      return 0;
    };
  });
  auto* backend_set = backend_cmd->add_subcommand(
      "set",
      "change a backend's weight or state\n"
      "Example: tollgate backend set 198.18.100.1:80/tcp 198.18.1.11:8080 --weight 3 --state up");
  add_pair(backend_set);
  add_weight_state(backend_set);
  add_output_option(backend_set, session);
  auto* backend_drain =
      backend_cmd->add_subcommand("drain",
                                  "stop sending new flows to a backend; its established flows stay\n"
                                  "Example: tollgate backend drain 198.18.100.1:80/tcp 198.18.1.11:8080");
  add_pair(backend_drain);
  add_output_option(backend_drain, session);
  bool drain_wait = false;
  double drain_timeout = 300;
  backend_drain->add_flag("--wait", drain_wait, "return when the backend has no active flows left");
  backend_drain->add_option("--timeout", drain_timeout, "with --wait: give up after SECONDS (default 300)")
      ->check(CLI::Range(0.0, 86400.0));
  auto update = [&](const json& body, std::string_view done) {
    auto reply = session.call("PATCH", backend_path(service, backend), body);
    if (!reply) return 1;
    if (session.json_output())
      session.print_json(*reply);
    else
      out << "backend " << text_of((*reply)["address"]) << " " << done << ": weight " << text_of((*reply)["weight"])
          << ", " << text_of((*reply)["state"]) << "\n";
    return 0;
  };
  backend_set->callback([&] {
    action = [&] {
      json body = json::object();
      if (weight) body["weight"] = weight;
      if (!state.empty()) body["state"] = state;
      if (body.empty()) {
        err << "tollgate: backend set: give --weight or --state (or both)\n";
        return 2;
      }
      return update(body, "changed");
    };
  });
  backend_drain->callback([&] {
    action = [&] {
      if (int code = update({{"state", "draining"}}, "draining"); code != 0 || !drain_wait) return code;
      // Wait on the condition (no active flows) with a deadline.
      const auto started = std::chrono::steady_clock::now();
      const auto deadline = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                          std::chrono::duration<double>(drain_timeout));
      for (;;) {
        auto reply = session.call("GET", backend_path(service, backend));
        if (!reply) return 1;
        const uint64_t active = reply->value("active_flows", uint64_t{0});
        const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        if (active == 0) {
          out << fmt::format("backend {} drained: no active flows (waited {:.1f} s)\n", text_of((*reply)["address"]),
                             waited);
          return 0;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
          err << fmt::format("tollgate: backend drain: timeout after {:.1f} s: {} active flows remain on {}\n", waited,
                             active, text_of((*reply)["address"]));
          return 1;
        }
        std::this_thread::sleep_until(
            std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(250)));
      }
    };
  });
  auto* backend_rm = backend_cmd->add_subcommand("rm",
                                                 "remove a backend; its flows move to the others\n"
                                                 "Example: tollgate backend rm 198.18.100.1:80/tcp 198.18.1.11:8080");
  add_pair(backend_rm);
  backend_rm->callback([&] {
    action = [&] {
      if (!session.call("DELETE", backend_path(service, backend))) return 1;
      out << "backend " << Endpoint::parse(backend)->to_string() << " removed from "
          << ServiceAddress::parse(service)->to_string() << "\n";
      return 0;
    };
  });
  auto* backend_list = backend_cmd->add_subcommand(
      "list", "list a service's backends\nExample: tollgate backend list 198.18.100.1:80/tcp");
  backend_list->add_option("service", service, "the service, ADDRESS:PORT/PROTOCOL")
      ->required()
      ->check(service_validator());
  add_output_option(backend_list, session);
  backend_list->callback([&] {
    action = [&] {
      auto reply = session.call("GET", service_path(service) + "/backends");
      if (!reply) return 1;
      if (session.json_output()) {
        session.print_json(*reply);
        return 0;
      }
      std::vector<std::vector<std::string>> rows{{"BACKEND", "WEIGHT", "STATE", "HEALTH", "ACTIVE"}};
      for (const auto& entry : *reply)
        rows.push_back({text_of(entry["address"]), text_of(entry["weight"]), text_of(entry["state"]),
                        health_text(entry.value("health", json::object())), text_of(entry.value("active_flows", 0))});
      print_table(out, rows);
      return 0;
    };
  });

  // status, stats
  auto* status_cmd = app.add_subcommand("status",
                                        "the agent: version, programs, pins, interfaces, counts\n"
                                        "Example: tollgate status");
  add_output_option(status_cmd, session);
  status_cmd->callback([&] {
    action = [&] {
      auto reply = session.call("GET", "/v1/status");
      if (!reply) return 1;
      if (session.json_output()) {
        session.print_json(*reply);
        return 0;
      }
      std::vector<std::vector<std::string>> rows;
      for (const auto& [key, value] : reply->items()) rows.push_back({key + ":", text_of(value)});
      print_table(out, rows);
      return 0;
    };
  });
  auto* stats_cmd = app.add_subcommand("stats",
                                       "packets, bytes and new flows per service and backend; drops\n"
                                       "Example: tollgate stats -o json");
  add_output_option(stats_cmd, session);
  stats_cmd->callback([&] {
    action = [&] {
      auto reply = session.call("GET", "/v1/stats");
      if (!reply) return 1;
      if (session.json_output()) {
        session.print_json(*reply);
        return 0;
      }
      std::vector<std::vector<std::string>> rows{{"SERVICE / BACKEND", "STATE", "PACKETS", "BYTES", "NEW FLOWS"}};
      auto counters = [](const json& c) -> std::vector<std::string> {
        if (!c.contains("packets")) return {"?", "?", "?"};
        return {text_of(c["packets"]), text_of(c["bytes"]), text_of(c["new_flows"])};
      };
      for (const auto& entry : (*reply)["services"]) {
        auto row = std::vector<std::string>{text_of(entry["address"]), ""};
        for (auto& cell : counters(entry["counters"])) row.push_back(cell);
        rows.push_back(row);
        for (const auto& b : entry["backends"]) {
          // As `backend list` shows it: the desired state, and held down
          // when the health loop keeps it out of selection.
          const bool held = b.value("state", "") == "up" && !b.value("selectable", true);
          row = {"  " + text_of(b["address"]), text_of(b["state"]) + (held ? " (held down)" : "")};
          for (auto& cell : counters(b["counters"])) row.push_back(cell);
          rows.push_back(row);
        }
      }
      print_table(out, rows);
      std::vector<std::vector<std::string>> drops{{"DROP REASON", "PACKETS"}};
      for (const auto& [reason, count] : (*reply)["drops"].items())
        if (count != 0) drops.push_back({reason, text_of(count)});
      if (drops.size() > 1) {
        out << "\n";
        print_table(out, drops);
      }
      return 0;
    };
  });

  // conntrack list|flush
  auto* conntrack_cmd = app.add_subcommand("conntrack", "list or flush the connection table");
  auto* conntrack_list = conntrack_cmd->add_subcommand(
      "list", "list flows: client, service, backend, state, idle time\nExample: tollgate conntrack list --limit 20");
  conntrack_list->add_option("--limit", limit, "at most this many flows (default 1000)")
      ->check(CLI::Range(size_t{1}, size_t{999999999}));
  add_output_option(conntrack_list, session);
  conntrack_list->callback([&] {
    action = [&] {
      auto reply = session.call("GET", fmt::format("/v1/conntrack?limit={}", limit));
      if (!reply) return 1;
      if (session.json_output()) {
        session.print_json(*reply);
        return 0;
      }
      std::vector<std::vector<std::string>> rows{{"CLIENT", "SERVICE", "BACKEND", "STATE", "IDLE"}};
      for (const auto& flow : (*reply)["flows"])
        rows.push_back({text_of(flow["client"]), text_of(flow["service"]), text_of(flow["backend"]),
                        text_of(flow["state"]), fmt::format("{:.1f}s", flow["idle_seconds"].get<double>())});
      print_table(out, rows);
      out << fmt::format("{} flows{}\n", text_of((*reply)["total"]),
                         (*reply)["truncated"].get<bool>() ? fmt::format(", {} shown", limit) : "");
      return 0;
    };
  });
  auto* conntrack_flush = conntrack_cmd->add_subcommand(
      "flush", "forget every flow; each is steered afresh on its next packet\nExample: tollgate conntrack flush");
  conntrack_flush->callback([&] {
    action = [&] {
      auto reply = session.call("DELETE", "/v1/conntrack");
      if (!reply) return 1;
      out << text_of((*reply)["flushed"]) << " flows flushed\n";
      return 0;
    };
  });

  // policy show|allow|deny|unlist|rate-limit|connection-limit|syn-auth|clear
  auto* policy_cmd = app.add_subcommand(
      "policy", "access lists (global or per service), per-source rate limits and new-connection caps");
  std::vector<std::string> cidrs;
  std::string policy_service;
  auto policy_path = [&]() {
    return policy_service.empty() ? std::string("/v1/policy/access") : service_path(policy_service) + "/policy";
  };
  // Reads the policy in scope, lets `change` edit it, writes it back whole.
  auto edit_policy = [&](const std::function<void(json&)>& change) {
    auto current = session.call("GET", policy_path());
    if (!current) return 1;
    change(*current);
    auto written = session.call("PUT", policy_path(), *current);
    if (!written) return 1;
    if (session.json_output())
      session.print_json(*written);
    else
      out << "policy of " << (policy_service.empty() ? "every service (global)" : policy_service) << " updated\n";
    return 0;
  };
  auto print_policy = [&](const std::string& scope, const json& policy) {
    auto list = [](const json& entries) {
      std::vector<std::string> items;
      for (const auto& entry : entries) items.push_back(text_of(entry));
      return items.empty() ? std::string("-") : fmt::format("{}", fmt::join(items, " "));
    };
    out << scope << "\n  allow: " << list(policy.value("allow", json::array()))
        << "\n  deny:  " << list(policy.value("deny", json::array())) << "\n";
    if (policy.contains("rate_limit")) {
      const json& rate = policy["rate_limit"];
      std::vector<std::string> parts;
      if (rate.contains("packets_per_second"))
        parts.push_back(fmt::format("{} packets/s (burst {})", text_of(rate["packets_per_second"]),
                                    text_of(rate["burst_packets"])));
      if (rate.contains("bytes_per_second"))
        parts.push_back(
            fmt::format("{} bytes/s (burst {})", text_of(rate["bytes_per_second"]), text_of(rate["burst_bytes"])));
      out << fmt::format("  rate limit per source /{} (IPv4), /{} (IPv6): {}\n", text_of(rate["ipv4_prefix"]),
                         text_of(rate["ipv6_prefix"]), fmt::join(parts, ", "));
    }
    if (policy.contains("new_connections"))
      out << fmt::format("  new connections: {}/s (burst {})\n", text_of(policy["new_connections"]["per_second"]),
                         text_of(policy["new_connections"]["burst"]));
    if (policy.value("syn_authentication", false)) out << "  SYN authentication: on\n";
  };

  auto* policy_show = policy_cmd->add_subcommand("show",
                                                 "show the global lists and every service's policy, or one service's\n"
                                                 "Example: tollgate policy show 198.18.100.1:80/tcp");
  policy_show->add_option("service", policy_service, "ADDRESS:PORT/PROTOCOL")->check(service_validator());
  add_output_option(policy_show, session);
  policy_show->callback([&] {
    action = [&] {
      if (!policy_service.empty()) {
        auto reply = session.call("GET", policy_path());
        if (!reply) return 1;
        if (session.json_output())
          session.print_json(*reply);
        else
          print_policy(ServiceAddress::parse(policy_service)->to_string(), *reply);
        return 0;
      }
      auto reply = session.call("GET", "/v1/policy");
      if (!reply) return 1;
      if (session.json_output()) {
        session.print_json(*reply);
        return 0;
      }
      print_policy("global", (*reply)["access"]);
      for (const auto& [name, policy] : (*reply)["services"].items()) print_policy(name, policy);
      return 0;
    };
  });
  for (const char* list : {"allow", "deny"}) {
    const std::string name = list;
    auto* command = policy_cmd->add_subcommand(
        name, fmt::format("add CIDRs to the {} list of a service (--service) or of every service\n"
                          "Example: tollgate policy {} 198.18.0.0/24 --service 198.18.100.1:80/tcp",
                          name, name));
    command->add_option("cidr", cidrs, "ADDRESS/PREFIX (repeatable)")->required()->check(cidr_validator());
    command->add_option("--service", policy_service, "ADDRESS:PORT/PROTOCOL")->check(service_validator());
    add_output_option(command, session);
    command->callback([&, name] {
      action = [&, name] {
        return edit_policy([&](json& policy) {
          json& entries = policy[name];
          if (!entries.is_array()) entries = json::array();
          for (const auto& text : cidrs) {
            const std::string cidr = Cidr::parse(text)->to_string();
            if (std::find(entries.begin(), entries.end(), cidr) == entries.end()) entries.push_back(cidr);
          }
        });
      };
    });
  }
  auto* policy_unlist =
      policy_cmd->add_subcommand("unlist",
                                 "remove CIDRs from the allow and deny lists\n"
                                 "Example: tollgate policy unlist 198.18.0.0/24 --service 198.18.100.1:80/tcp");
  policy_unlist->add_option("cidr", cidrs, "ADDRESS/PREFIX (repeatable)")->required()->check(cidr_validator());
  policy_unlist->add_option("--service", policy_service, "ADDRESS:PORT/PROTOCOL")->check(service_validator());
  add_output_option(policy_unlist, session);
  policy_unlist->callback([&] {
    action = [&] {
      return edit_policy([&](json& policy) {
        for (const char* list : {"allow", "deny"}) {
          if (!policy.contains(list)) continue;
          json kept = json::array();
          for (const auto& entry : policy[list]) {
            bool listed = false;
            for (const auto& text : cidrs) listed = listed || Cidr::parse(text)->to_string() == text_of(entry);
            if (!listed) kept.push_back(entry);
          }
          policy[list] = kept;
        }
      });
    };
  });

  RateLimitSpec rate;
  bool off = false;
  auto* policy_rate = policy_cmd->add_subcommand(
      "rate-limit",
      "limit each source's packets (and bytes) per second to a service; --off removes it\n"
      "Example: tollgate policy rate-limit 198.18.100.1:53/udp --packets-per-second 1000 --burst 100");
  policy_rate->add_option("service", policy_service, "ADDRESS:PORT/PROTOCOL")->required()->check(service_validator());
  auto* pps = policy_rate->add_option("--packets-per-second", rate.packets_per_second, "packets per second and source");
  auto* burst = policy_rate->add_option("--burst", rate.burst_packets, "packets a source may send at once");
  auto* bps = policy_rate->add_option("--bytes-per-second", rate.bytes_per_second, "bytes per second and source");
  auto* burst_bytes = policy_rate->add_option("--burst-bytes", rate.burst_bytes, "bytes a source may send at once");
  auto* v4 = policy_rate->add_option("--ipv4-prefix", rate.ipv4_prefix, "sources share a bucket per IPv4 prefix (32)")
                 ->check(CLI::Range(1, 32));
  auto* v6 = policy_rate->add_option("--ipv6-prefix", rate.ipv6_prefix, "sources share a bucket per IPv6 prefix (64)")
                 ->check(CLI::Range(1, 128));
  auto* rate_off = policy_rate->add_flag("--off", off, "remove the rate limit");
  for (auto* option : {pps, burst, bps, burst_bytes, v4, v6}) option->excludes(rate_off);
  add_output_option(policy_rate, session);
  policy_rate->callback([&] {
    action = [&] {
      return edit_policy([&](json& policy) {
        policy.erase("rate_limit");
        if (off) return;
        json limit = {{"ipv4_prefix", rate.ipv4_prefix}, {"ipv6_prefix", rate.ipv6_prefix}};
        if (pps->count()) limit["packets_per_second"] = rate.packets_per_second;
        if (burst->count()) limit["burst_packets"] = rate.burst_packets;
        if (bps->count()) limit["bytes_per_second"] = rate.bytes_per_second;
        if (burst_bytes->count()) limit["burst_bytes"] = rate.burst_bytes;
        policy["rate_limit"] = limit;
      });
    };
  });

  ConnectionLimitSpec connections;
  auto* policy_conn =
      policy_cmd->add_subcommand("connection-limit",
                                 "cap a service's new connections per second (all sources); --off removes it\n"
                                 "Example: tollgate policy connection-limit 198.18.100.1:80/tcp --per-second 500");
  policy_conn->add_option("service", policy_service, "ADDRESS:PORT/PROTOCOL")->required()->check(service_validator());
  auto* per_second = policy_conn->add_option("--per-second", connections.per_second, "new connections per second");
  auto* conn_burst = policy_conn->add_option("--burst", connections.burst, "new connections at once");
  auto* conn_off = policy_conn->add_flag("--off", off, "remove the cap");
  per_second->excludes(conn_off);
  conn_burst->excludes(conn_off);
  add_output_option(policy_conn, session);
  policy_conn->callback([&] {
    action = [&] {
      return edit_policy([&](json& policy) {
        policy.erase("new_connections");
        if (off) return;
        json limit = {{"per_second", connections.per_second}};
        if (conn_burst->count()) limit["burst"] = connections.burst;
        policy["new_connections"] = limit;
      });
    };
  });

  auto* policy_syn = policy_cmd->add_subcommand(
      "syn-auth",
      "SYN authentication for a service (IPv4): a new source's first SYN is answered by the gateway,\n"
      "and only sources that answer back reach the backends; --off turns it off\n"
      "Example: tollgate policy syn-auth 198.18.100.1:80/tcp");
  policy_syn->add_option("service", policy_service, "ADDRESS:PORT/PROTOCOL")->required()->check(service_validator());
  policy_syn->add_flag("--off", off, "turn it off");
  add_output_option(policy_syn, session);
  policy_syn->callback([&] {
    action = [&] {
      return edit_policy([&](json& policy) {
        policy.erase("syn_authentication");
        if (!off) policy["syn_authentication"] = true;
      });
    };
  });

  auto* policy_clear = policy_cmd->add_subcommand("clear",
                                                  "remove a service's whole policy (--service), or the global lists\n"
                                                  "Example: tollgate policy clear --service 198.18.100.1:80/tcp");
  policy_clear->add_option("--service", policy_service, "ADDRESS:PORT/PROTOCOL")->check(service_validator());
  policy_clear->callback([&] {
    action = [&] {
      if (!session.call("DELETE", policy_path())) return 1;
      out << "policy of " << (policy_service.empty() ? "every service (global)" : policy_service) << " cleared\n";
      return 0;
    };
  });

  // events [--follow]
  bool follow = false;
  size_t event_count = 0;
  auto* events_cmd = app.add_subcommand(
      "events",
      "data path events: access-list denials, rate-limit and connection-cap drops, flows moved off a\n"
      "backend, flows found untracked. Each stands for `count` occurrences.\n"
      "Example: tollgate events --follow -o json");
  events_cmd->add_flag("-f,--follow", follow, "keep printing new events until interrupted");
  events_cmd->add_option("--count", event_count, "stop after this many events")
      ->check(CLI::Range(size_t{1}, size_t{999999999}));
  add_output_option(events_cmd, session);
  events_cmd->callback([&] {
    action = [&] {
      uint64_t next = 0;
      size_t printed = 0;
      auto print = [&](const json& event) {
        if (session.json_output()) {
          out << event.dump() << "\n";
        } else {
          std::string detail;
          if (event.contains("reason")) detail = text_of(event["reason"]);
          if (event.contains("backend")) detail = "from " + text_of(event["backend"]);
          out << fmt::format("{}  {:<18} {:<24} {:<24} x{} {}\n", text_of(event["time"]), text_of(event["kind"]),
                             text_of(event["service"]), event.contains("source") ? text_of(event["source"]) : "-",
                             text_of(event["count"]), detail);
        }
        out.flush();
      };
      for (;;) {
        auto reply = session.call("GET", fmt::format("/v1/events?after={}", next));
        if (!reply) return 1;
        for (const auto& event : (*reply)["events"]) {
          print(event);
          if (event_count && ++printed >= event_count) return 0;
        }
        next = (*reply)["next"].get<uint64_t>();
        if (!follow && (*reply)["events"].empty()) return 0;
        if (follow) std::this_thread::sleep_for(std::chrono::milliseconds(250));
      }
    };
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int code = app.exit(error, out, err);
    return code == 0 ? 0 : 2;
  }
  if (!action) {
    // A command without its verb: name the level and what it takes.
    CLI::App* level = &app;
    while (!level->get_subcommands().empty()) level = level->get_subcommands().front();
    std::vector<std::string> verbs;
    for (const auto* sub : level->get_subcommands({})) verbs.push_back(sub->get_name());
    err << fmt::format("{}: a subcommand is required: {}\nRun with --help for more information.\n",
                       level == &app ? "tollgate" : level->get_name(), fmt::join(verbs, ", "));
    return 2;
  }
  return action();
}

}  // namespace tollgate::cli
