// tollgate status, tollgate stats
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "commands.h"

namespace tollgate::cli {
namespace {

int do_status(Session& session) {
  auto reply = session.call("GET", "/v1/status");
  if (!reply) return 1;
  if (session.json_output()) {
    session.print_json(*reply);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [key, value] : reply->items()) rows.push_back({key + ":", text_of(value)});
  print_table(session.out, rows);
  return 0;
}

// Packets, bytes, new flows; "?" when the agent could not read them.
std::vector<std::string> counter_cells(const json& counters) {
  if (!counters.contains("packets")) return {"?", "?", "?"};
  return {text_of(counters["packets"]), text_of(counters["bytes"]), text_of(counters["new_flows"])};
}

int do_stats(Session& session) {
  auto reply = session.call("GET", "/v1/stats");
  if (!reply) return 1;
  if (session.json_output()) {
    session.print_json(*reply);
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"SERVICE / BACKEND", "STATE", "PACKETS", "BYTES", "NEW FLOWS"}};
  for (const auto& entry : (*reply)["services"]) {
    auto row = std::vector<std::string>{text_of(entry["address"]), ""};
    for (auto& cell : counter_cells(entry["counters"])) row.push_back(cell);
    rows.push_back(row);
    for (const auto& backend : entry["backends"]) {
      // As `backend list` shows it: the desired state, and held down
      // when the health loop keeps it out of selection.
      const bool held = backend.value("state", "") == "up" && !backend.value("selectable", true);
      row = {"  " + text_of(backend["address"]), text_of(backend["state"]) + (held ? " (held down)" : "")};
      for (auto& cell : counter_cells(backend["counters"])) row.push_back(cell);
      rows.push_back(row);
    }
  }
  print_table(session.out, rows);
  std::vector<std::vector<std::string>> drops{{"DROP REASON", "PACKETS"}};
  for (const auto& [reason, count] : (*reply)["drops"].items())
    if (count != 0) drops.push_back({reason, text_of(count)});
  if (drops.size() > 1) {
    session.out << "\n";
    print_table(session.out, drops);
  }
  return 0;
}

}  // namespace

void register_status_commands(CLI::App& app, Dispatch& dispatch) {
  auto* status = app.add_subcommand("status",
                                    "the agent: version, programs, pins, interfaces, counts\n"
                                    "Example: tollgate status");
  dispatch.add(status, do_status);
  add_output_option(status, dispatch.session());

  auto* stats = app.add_subcommand("stats",
                                   "packets, bytes and new flows per service and backend; drops\n"
                                   "Example: tollgate stats -o json");
  dispatch.add(stats, do_stats);
  add_output_option(stats, dispatch.session());
}

}  // namespace tollgate::cli
