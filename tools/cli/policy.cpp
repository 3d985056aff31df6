// tollgate policy show|allow|deny|unlist|rate-limit|connection-limit|syn-auth|clear
#include "policy.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "address.h"
#include "commands.h"

namespace tollgate::cli {
namespace {

// show and clear: one service's policy, or (no service) the global lists.
struct PolicyScopeOptions {
  std::string service;
};

// allow, deny, unlist: CIDRs for a list of one service or of every service.
struct PolicyCidrsOptions {
  std::string list;  // "allow" or "deny"; unlist takes from both
  std::vector<std::string> cidrs;
  std::string service;
};

struct RateLimitOptions {
  std::string service;
  RateLimitSpec rate;
  bool off = false;
  // Which of the limits were given: only those are sent.
  const CLI::Option* packets_per_second = nullptr;
  const CLI::Option* burst_packets = nullptr;
  const CLI::Option* bytes_per_second = nullptr;
  const CLI::Option* burst_bytes = nullptr;
};

struct ConnectionLimitOptions {
  std::string service;
  ConnectionLimitSpec connections;
  bool off = false;
  const CLI::Option* burst = nullptr;  // sent only when given
};

struct SynAuthOptions {
  std::string service;
  bool off = false;
};

std::string policy_path(const std::string& service) {
  return service.empty() ? std::string("/v1/policy/access") : service_path(service) + "/policy";
}

std::string scope_text(const std::string& service) { return service.empty() ? "every service (global)" : service; }

// Reads the policy in scope, lets `change` edit it, writes it back whole.
int edit_policy(Session& session, const std::string& service, const std::function<void(json&)>& change) {
  auto current = session.call("GET", policy_path(service));
  if (!current) return 1;
  change(*current);
  auto written = session.call("PUT", policy_path(service), *current);
  if (!written) return 1;
  if (session.json_output())
    session.print_json(*written);
  else
    session.out << "policy of " << scope_text(service) << " updated\n";
  return 0;
}

std::string list_text(const json& entries) {
  std::vector<std::string> items;
  for (const auto& entry : entries) items.push_back(text_of(entry));
  return items.empty() ? std::string("-") : fmt::format("{}", fmt::join(items, " "));
}

void print_policy(std::ostream& out, const std::string& scope, const json& policy) {
  out << scope << "\n  allow: " << list_text(policy.value("allow", json::array()))
      << "\n  deny:  " << list_text(policy.value("deny", json::array())) << "\n";
  if (policy.contains("rate_limit")) {
    const json& rate = policy["rate_limit"];
    std::vector<std::string> parts;
    if (rate.contains("packets_per_second"))
      parts.push_back(
          fmt::format("{} packets/s (burst {})", text_of(rate["packets_per_second"]), text_of(rate["burst_packets"])));
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
}

int do_policy_show(Session& session, const PolicyScopeOptions& options) {
  if (!options.service.empty()) {
    auto reply = session.call("GET", policy_path(options.service));
    if (!reply) return 1;
    if (session.json_output())
      session.print_json(*reply);
    else
      print_policy(session.out, ServiceAddress::parse(options.service)->to_string(), *reply);
    return 0;
  }
  auto reply = session.call("GET", "/v1/policy");
  if (!reply) return 1;
  if (session.json_output()) {
    session.print_json(*reply);
    return 0;
  }
  print_policy(session.out, "global", (*reply)["access"]);
  for (const auto& [name, policy] : (*reply)["services"].items()) print_policy(session.out, name, policy);
  return 0;
}

int do_policy_list_add(Session& session, const PolicyCidrsOptions& options) {
  return edit_policy(session, options.service, [&](json& policy) {
    json& entries = policy[options.list];
    if (!entries.is_array()) entries = json::array();
    for (const auto& text : options.cidrs) {
      const std::string cidr = Cidr::parse(text)->to_string();
      if (std::find(entries.begin(), entries.end(), cidr) == entries.end()) entries.push_back(cidr);
    }
  });
}

int do_policy_unlist(Session& session, const PolicyCidrsOptions& options) {
  return edit_policy(session, options.service, [&](json& policy) {
    for (const char* list : {"allow", "deny"}) {
      if (!policy.contains(list)) continue;
      json kept = json::array();
      for (const auto& entry : policy[list]) {
        bool listed = false;
        for (const auto& text : options.cidrs) listed = listed || Cidr::parse(text)->to_string() == text_of(entry);
        if (!listed) kept.push_back(entry);
      }
      policy[list] = kept;
    }
  });
}

int do_policy_rate_limit(Session& session, const RateLimitOptions& options) {
  return edit_policy(session, options.service, [&](json& policy) {
    policy.erase("rate_limit");
    if (options.off) return;
    const RateLimitSpec& rate = options.rate;
    json limit = {{"ipv4_prefix", rate.ipv4_prefix}, {"ipv6_prefix", rate.ipv6_prefix}};
    if (options.packets_per_second->count()) limit["packets_per_second"] = rate.packets_per_second;
    if (options.burst_packets->count()) limit["burst_packets"] = rate.burst_packets;
    if (options.bytes_per_second->count()) limit["bytes_per_second"] = rate.bytes_per_second;
    if (options.burst_bytes->count()) limit["burst_bytes"] = rate.burst_bytes;
    policy["rate_limit"] = limit;
  });
}

int do_policy_connection_limit(Session& session, const ConnectionLimitOptions& options) {
  return edit_policy(session, options.service, [&](json& policy) {
    policy.erase("new_connections");
    if (options.off) return;
    json limit = {{"per_second", options.connections.per_second}};
    if (options.burst->count()) limit["burst"] = options.connections.burst;
    policy["new_connections"] = limit;
  });
}

int do_policy_syn_auth(Session& session, const SynAuthOptions& options) {
  return edit_policy(session, options.service, [&](json& policy) {
    policy.erase("syn_authentication");
    if (!options.off) policy["syn_authentication"] = true;
  });
}

int do_policy_clear(Session& session, const PolicyScopeOptions& options) {
  if (!session.call("DELETE", policy_path(options.service))) return 1;
  session.out << "policy of " << scope_text(options.service) << " cleared\n";
  return 0;
}

void add_service_argument(CLI::App* command, std::string& service) {
  command->add_option("service", service, "ADDRESS:PORT/PROTOCOL")->required()->check(service_validator());
}

void add_service_option(CLI::App* command, std::string& service) {
  command->add_option("--service", service, "ADDRESS:PORT/PROTOCOL")->check(service_validator());
}

void add_cidrs_argument(CLI::App* command, std::vector<std::string>& cidrs) {
  command->add_option("cidr", cidrs, "ADDRESS/PREFIX (repeatable)")->required()->check(cidr_validator());
}

void register_rate_limit(CLI::App* policy_cmd, Dispatch& dispatch) {
  auto* command = policy_cmd->add_subcommand(
      "rate-limit",
      "limit each source's packets (and bytes) per second to a service; --off removes it\n"
      "Example: tollgate policy rate-limit 198.18.100.1:53/udp --packets-per-second 1000 --burst 100");
  auto& options = dispatch.add(command, do_policy_rate_limit);
  RateLimitSpec& rate = options.rate;
  add_service_argument(command, options.service);
  auto* pps = command->add_option("--packets-per-second", rate.packets_per_second, "packets per second and source");
  auto* burst = command->add_option("--burst", rate.burst_packets, "packets a source may send at once");
  auto* bps = command->add_option("--bytes-per-second", rate.bytes_per_second, "bytes per second and source");
  auto* burst_bytes = command->add_option("--burst-bytes", rate.burst_bytes, "bytes a source may send at once");
  auto* v4 = command->add_option("--ipv4-prefix", rate.ipv4_prefix, "sources share a bucket per IPv4 prefix (32)")
                 ->check(CLI::Range(1, 32));
  auto* v6 = command->add_option("--ipv6-prefix", rate.ipv6_prefix, "sources share a bucket per IPv6 prefix (64)")
                 ->check(CLI::Range(1, 128));
  auto* off = command->add_flag("--off", options.off, "remove the rate limit");
  for (auto* option : {pps, burst, bps, burst_bytes, v4, v6}) option->excludes(off);
  add_output_option(command, dispatch.session());
  options.packets_per_second = pps;
  options.burst_packets = burst;
  options.bytes_per_second = bps;
  options.burst_bytes = burst_bytes;
}

void register_connection_limit(CLI::App* policy_cmd, Dispatch& dispatch) {
  auto* command =
      policy_cmd->add_subcommand("connection-limit",
                                 "cap a service's new connections per second (all sources); --off removes it\n"
                                 "Example: tollgate policy connection-limit 198.18.100.1:80/tcp --per-second 500");
  auto& options = dispatch.add(command, do_policy_connection_limit);
  add_service_argument(command, options.service);
  auto* per_second = command->add_option("--per-second", options.connections.per_second, "new connections per second");
  auto* burst = command->add_option("--burst", options.connections.burst, "new connections at once");
  auto* off = command->add_flag("--off", options.off, "remove the cap");
  per_second->excludes(off);
  burst->excludes(off);
  add_output_option(command, dispatch.session());
  options.burst = burst;
}

}  // namespace

void register_policy_commands(CLI::App& app, Dispatch& dispatch) {
  auto* policy_cmd = app.add_subcommand(
      "policy", "access lists (global or per service), per-source rate limits and new-connection caps");

  auto* show = policy_cmd->add_subcommand("show",
                                          "show the global lists and every service's policy, or one service's\n"
                                          "Example: tollgate policy show 198.18.100.1:80/tcp");
  auto& show_options = dispatch.add(show, do_policy_show);
  show->add_option("service", show_options.service, "ADDRESS:PORT/PROTOCOL")->check(service_validator());
  add_output_option(show, dispatch.session());

  for (const char* list : {"allow", "deny"}) {
    const std::string name = list;
    auto* command = policy_cmd->add_subcommand(
        name, fmt::format("add CIDRs to the {} list of a service (--service) or of every service\n"
                          "Example: tollgate policy {} 198.18.0.0/24 --service 198.18.100.1:80/tcp",
                          name, name));
    auto& options = dispatch.add(command, do_policy_list_add);
    options.list = name;
    add_cidrs_argument(command, options.cidrs);
    add_service_option(command, options.service);
    add_output_option(command, dispatch.session());
  }

  auto* unlist =
      policy_cmd->add_subcommand("unlist",
                                 "remove CIDRs from the allow and deny lists\n"
                                 "Example: tollgate policy unlist 198.18.0.0/24 --service 198.18.100.1:80/tcp");
  auto& unlist_options = dispatch.add(unlist, do_policy_unlist);
  add_cidrs_argument(unlist, unlist_options.cidrs);
  add_service_option(unlist, unlist_options.service);
  add_output_option(unlist, dispatch.session());

  register_rate_limit(policy_cmd, dispatch);
  register_connection_limit(policy_cmd, dispatch);

  auto* syn_auth = policy_cmd->add_subcommand(
      "syn-auth",
      "SYN authentication for a service (IPv4): a new source's first SYN is answered by the gateway,\n"
      "and only sources that answer back reach the backends; --off turns it off\n"
      "Example: tollgate policy syn-auth 198.18.100.1:80/tcp");
  auto& syn_options = dispatch.add(syn_auth, do_policy_syn_auth);
  add_service_argument(syn_auth, syn_options.service);
  syn_auth->add_flag("--off", syn_options.off, "turn it off");
  add_output_option(syn_auth, dispatch.session());

  auto* clear = policy_cmd->add_subcommand("clear",
                                           "remove a service's whole policy (--service), or the global lists\n"
                                           "Example: tollgate policy clear --service 198.18.100.1:80/tcp");
  auto& clear_options = dispatch.add(clear, do_policy_clear);
  add_service_option(clear, clear_options.service);
}

}  // namespace tollgate::cli
