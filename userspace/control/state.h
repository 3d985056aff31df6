// The agent's desired state on disk: what it was told (services, backends,
// timeouts), which configuration file it last applied, and where its
// programs are attached. Written atomically: a crash at any point leaves
// either the old file or the new one, never a mix.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "result.h"

namespace tollgate {

inline constexpr const char* kDefaultStateDir = "/var/lib/tollgate";

struct AgentState {
  Config desired;
  // content_digest() of the configuration file applied last; a start with
  // the same file keeps what the API changed since.
  std::string config_digest;
  std::vector<std::string> xdp_interfaces;
  std::vector<std::string> tc_interfaces;

  bool operator==(const AgentState&) const = default;
};

// `dir`/state.json. No file yet: std::nullopt. A file that cannot be read
// or parsed is an error (never silently an empty state).
Result<std::optional<AgentState>> load_state(const std::string& dir);
// `dir`/state.json is the whole state; `dir`/state.journal holds the
// changes of single services since (a line each, fsynced): writing 10,000
// services' config for one backend's change would cost a third of a second.
// load_state() applies the journal; save_state() starts a new one.
Status save_state(const std::string& dir, const AgentState& state);
// Records that the service at `address` went from `before` to `after`
// (nullptr: none); when only some backends changed (a drain, a weight),
// only those. The whole state, from `whole`, is written instead when the
// journal is long.
Status save_service_change(const std::string& dir, const ServiceAddress& address, const ServiceSpec* before,
                           const ServiceSpec* after, const std::function<AgentState()>& whole);

// Writes `path` aside, fsyncs it, renames it over `path` and fsyncs the
// directory, so that the rename itself survives a crash.
Status write_file_atomically(const std::string& path, std::string_view content);

}  // namespace tollgate
