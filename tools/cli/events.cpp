// tollgate events [--follow]
#include <CLI/CLI.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "commands.h"

namespace tollgate::cli {
namespace {

struct EventsOptions {
  bool follow = false;
  size_t count = 0;  // 0: no limit
};

// One event a line: JSON, or time, kind, service, source, count and detail.
void print_event(Session& session, const json& event) {
  if (session.json_output()) {
    session.out << dump_json(event) << "\n";
  } else {
    std::string detail;
    if (event.contains("reason")) detail = text_of(event["reason"]);
    if (event.contains("backend")) detail = "from " + text_of(event["backend"]);
    session.out << fmt::format("{}  {:<18} {:<24} {:<24} x{} {}\n", text_of(event["time"]), text_of(event["kind"]),
                               text_of(event["service"]), event.contains("source") ? text_of(event["source"]) : "-",
                               text_of(event["count"]), detail);
  }
  session.out.flush();
}

int do_events(Session& session, const EventsOptions& options) {
  uint64_t next = 0;
  size_t printed = 0;
  for (;;) {
    auto reply = session.call("GET", fmt::format("/v1/events?after={}", next));
    if (!reply) return 1;
    for (const auto& event : (*reply)["events"]) {
      print_event(session, event);
      if (options.count && ++printed >= options.count) return 0;
    }
    next = (*reply)["next"].get<uint64_t>();
    if (!options.follow && (*reply)["events"].empty()) return 0;
    if (options.follow) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

}  // namespace

void register_events_commands(CLI::App& app, Dispatch& dispatch) {
  auto* events = app.add_subcommand(
      "events",
      "data path events: access-list denials, rate-limit and connection-cap drops, flows moved off a\n"
      "backend, flows found untracked. Each stands for `count` occurrences.\n"
      "Example: tollgate events --follow -o json");
  auto& options = dispatch.add(events, do_events);
  events->add_flag("-f,--follow", options.follow, "keep printing new events until interrupted");
  events->add_option("--count", options.count, "stop after this many events")
      ->check(CLI::Range(size_t{1}, size_t{999999999}));
  add_output_option(events, dispatch.session());
}

}  // namespace tollgate::cli
