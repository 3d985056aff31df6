// tollgate conntrack list|flush
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "commands.h"

namespace tollgate::cli {
namespace {

struct ConntrackListOptions {
  size_t limit = 1000;
};

int do_conntrack_list(Session& session, const ConntrackListOptions& options) {
  auto reply = session.call("GET", fmt::format("/v1/conntrack?limit={}", options.limit));
  if (!reply) return 1;
  if (session.json_output()) {
    session.print_json(*reply);
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"CLIENT", "SERVICE", "BACKEND", "STATE", "IDLE"}};
  for (const auto& flow : (*reply)["flows"])
    rows.push_back({text_of(flow["client"]), text_of(flow["service"]), text_of(flow["backend"]), text_of(flow["state"]),
                    fmt::format("{:.1f}s", flow["idle_seconds"].get<double>())});
  print_table(session.out, rows);
  session.out << fmt::format("{} flows{}\n", text_of((*reply)["total"]),
                             (*reply)["truncated"].get<bool>() ? fmt::format(", {} shown", options.limit) : "");
  return 0;
}

int do_conntrack_flush(Session& session) {
  auto reply = session.call("DELETE", "/v1/conntrack");
  if (!reply) return 1;
  session.out << text_of((*reply)["flushed"]) << " flows flushed\n";
  return 0;
}

}  // namespace

void register_conntrack_commands(CLI::App& app, Dispatch& dispatch) {
  auto* conntrack_cmd = app.add_subcommand("conntrack", "list or flush the connection table");

  auto* list = conntrack_cmd->add_subcommand(
      "list", "list flows: client, service, backend, state, idle time\nExample: tollgate conntrack list --limit 20");
  auto& list_options = dispatch.add(list, do_conntrack_list);
  list->add_option("--limit", list_options.limit, "at most this many flows (default 1000)")
      ->check(CLI::Range(size_t{1}, size_t{999999999}));
  add_output_option(list, dispatch.session());

  auto* flush = conntrack_cmd->add_subcommand(
      "flush", "forget every flow; each is steered afresh on its next packet\nExample: tollgate conntrack flush");
  dispatch.add(flush, do_conntrack_flush);
}

}  // namespace tollgate::cli
