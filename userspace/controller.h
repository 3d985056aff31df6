// The agent's desired state and the one way to change it: validated whole,
// persisted, reconciled into the data path, and put back as it was if the
// kernel refuses part of it. Backend state changes go to the audit log.
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "audit.h"
#include "config.h"
#include "dataplane.h"
#include "health_check.h"
#include "state.h"

namespace tollgate {

class Controller {
 public:
  Controller(Dataplane& dataplane, const MapFds& maps, AuditLog& audit, std::string state_dir, AgentState state);

  // Callers hold it across read, decide and apply.
  std::mutex& mutex() { return mutex_; }
  const AgentState& state() const { return state_; }
  const Dataplane& dataplane() const { return dataplane_; }
  const MapFds& maps() const { return maps_; }

  // Makes `desired` the desired state. `actor` says who asked (audit log).
  // With `config_digest`, records that this came from that config file.
  // On failure nothing is left changed: not the kernel, not the file.
  Status apply(const Config& desired, const nlohmann::json& actor,
               const std::optional<std::string>& config_digest = std::nullopt);
  // Records where the programs are attached (for an uninstall).
  Status set_interfaces(std::vector<std::string> xdp, std::vector<std::string> tc);
  // Counts applied changes: a reader that saw the same number saw the same
  // desired state.
  uint64_t version() const { return version_; }

  // Health overlay, not persisted: a backend held down is out of selection
  // (state down in the data path, its flows move) whatever its desired
  // state, until released. Only that backend's service is rewritten.
  Status set_held_down(const BackendKey& key, bool down);
  bool held_down(const BackendKey& key) const { return held_down_.contains(key); }
  // `desired` as the data path runs it: held-down backends are down.
  Config effective(const Config& desired) const;

 private:
  void audit_backend_changes(const Config& before, const Config& after, const nlohmann::json& actor);

  std::mutex mutex_;
  Dataplane& dataplane_;
  MapFds maps_;
  AuditLog& audit_;
  std::string state_dir_;
  AgentState state_;
  uint64_t version_ = 0;
  std::set<BackendKey> held_down_;
};

}  // namespace tollgate
