// What the CLI's verb groups share: the session with the agent, the
// validators, paths and table printing, and the dispatch that runs the verb
// the command line chose. Internal to tools/cli.
#pragma once

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cli.h"
#include "json_text.h"

namespace tollgate::cli {

using nlohmann::json;

// The agent's socket, the output format and where output goes.
struct Session {
  std::string socket_path;
  std::string output = "table";
  const std::function<Transport(const std::string&)>& connect;
  std::ostream& out;
  std::ostream& err;

  // Sends; on success returns the body as JSON, else prints why.
  std::optional<json> call(const std::string& method, const std::string& path, const json& body = nullptr);

  bool json_output() const { return output == "json"; }
  void print_json(const json& document) { out << dump_json(document, 2) << "\n"; }
};

// Each verb: an options struct filled by CLI11 and a do_* function run after
// parsing. Dispatch owns the options and remembers the verb chosen.
class Dispatch {
 public:
  explicit Dispatch(Session& session) : session_(session) {}

  Session& session() { return session_; }

  // `command` runs `do_verb` with its options; returns the options for the
  // command's arguments to fill.
  template <typename Options>
  Options& add(CLI::App* command, int (*do_verb)(Session&, const Options&)) {
    auto options = std::make_shared<Options>();
    options_.push_back(options);
    command->callback([this, do_verb, options = options.get()] {
      chosen_ = [this, do_verb, options] { return do_verb(session_, *options); };
    });
    return *options;
  }
  // A verb without options.
  void add(CLI::App* command, int (*do_verb)(Session&)) {
    command->callback([this, do_verb] { chosen_ = [this, do_verb] { return do_verb(session_); }; });
  }

  bool chosen() const { return static_cast<bool>(chosen_); }
  int run_chosen() { return chosen_(); }

 private:
  Session& session_;
  std::function<int()> chosen_;
  std::vector<std::shared_ptr<void>> options_;
};

// CLI11 validators: the message names what is wrong; CLI11 adds the name
// of the argument.
CLI::Validator service_validator();
CLI::Validator cidr_validator();
CLI::Validator backend_validator();

// -o/--output: table (default) or json.
void add_output_option(CLI::App* command, Session& session);

// One table for people: columns padded to their widest cell.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows);
// A JSON value as text: a string as it is, anything else dumped.
std::string text_of(const json& value);

// API paths of a service and of one of its backends (both already validated).
std::string service_path(const std::string& service);
std::string backend_path(const std::string& service, const std::string& backend);

// The verb groups, each in its own file; run() registers them in the order
// `tollgate --help` lists them.
void register_service_commands(CLI::App& app, Dispatch& dispatch);    // service.cpp
void register_backend_commands(CLI::App& app, Dispatch& dispatch);    // backend.cpp
void register_status_commands(CLI::App& app, Dispatch& dispatch);     // status.cpp: status, stats
void register_conntrack_commands(CLI::App& app, Dispatch& dispatch);  // conntrack.cpp
void register_policy_commands(CLI::App& app, Dispatch& dispatch);     // policy.cpp
void register_events_commands(CLI::App& app, Dispatch& dispatch);     // events.cpp

}  // namespace tollgate::cli
