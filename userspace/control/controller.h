// The one owner of the agent's state: what it was told (the desired
// state, persisted), what the data path runs (the effective state: the
// desired one with the backends the health loop holds down set down), and
// the one way to change either.
//
// Writers (the API, a SIGHUP, the health loop) are serialized by a private
// lock; a change is validated, persisted, and reconciled service by service:
// only the services whose effective spec changed are written, and a failure
// puts those back as they were. Readers (API reads, metrics, events, the
// health loop) take the published Snapshot, an immutable value, and never
// wait for a writer.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "audit.h"
#include "config.h"
#include "dataplane_target.h"
#include "loader.h"
#include "snapshot.h"
#include "state.h"

namespace tollgate {

class Controller {
 public:
  // `state` is the desired state loaded at start; the data path holds
  // nothing of it until the first apply().
  Controller(DataplaneTarget& dataplane, const DataPathMaps& maps, AuditLog& audit, std::string state_dir,
             AgentState state);

  std::shared_ptr<const Snapshot> snapshot() const;
  // The data path's maps, for readers of counters and flows (their fds
  // never change).
  const DataPathMaps& maps() const { return maps_; }

  // Makes `desired` the whole desired state (a config file, PUT /v1/config).
  // `actor` says who asked (audit log); with `config_digest`, records that
  // this came from that file. On failure nothing is left changed: not the
  // kernel, not the file.
  Status apply(const Config& desired, const nlohmann::json& actor,
               const std::optional<std::string>& config_digest = std::nullopt);

  // One service's change, decided under the lock on the current state:
  // `edit` gets the service (nullopt: none at that address) and changes it
  // (nullopt: remove it), or returns why not (its kind: invalid, not found,
  // conflict). Only this service is reconciled.
  using ServiceEdit = std::function<Status(std::optional<ServiceSpec>& service)>;
  Status edit_service(const ServiceAddress& address, const ServiceEdit& edit, const nlohmann::json& actor);
  // A change of the global settings (access lists, events, timeouts):
  // `edit` gets a copy of the current ones.
  using SettingsEdit = std::function<Status(Settings& settings)>;
  Status edit_globals(const SettingsEdit& edit, const nlohmann::json& actor);

  // Health overlay, not persisted: a held-down backend is down in the data
  // path (its flows move) until released. Only its service is rewritten.
  Status set_held_down(const BackendKey& key, bool down);
  // Records where the programs are attached (for an uninstall).
  Status set_interfaces(std::vector<std::string> xdp, std::vector<std::string> tc);

 private:
  // Persists `next` when `state_changed` (what is persisted differs from
  // `current`), reconciles the services in `touched` (and the global
  // settings when they changed) from `current` to `next`, publishes it; on
  // failure puts back `current`. Holds mutex_.
  Status commit(Snapshot next, const std::set<ServiceAddress>& touched, bool state_changed,
                const nlohmann::json& actor);
  Status reconcile(const Snapshot& from, const Snapshot& to, const std::set<ServiceAddress>& touched);
  void publish(Snapshot next);
  void audit_backend_changes(const Snapshot& before, const Snapshot& after, const std::set<ServiceAddress>& touched,
                             const nlohmann::json& actor);

  mutable std::mutex mutex_;  // serializes writers; readers take snapshots
  DataplaneTarget& dataplane_;
  DataPathMaps maps_;
  AuditLog& audit_;
  std::string state_dir_;
  std::shared_ptr<const Snapshot> current_;  // what the data path and the file hold
  bool applied_ = false;
  mutable std::mutex published_mutex_;  // guards the pointer only
  std::shared_ptr<const Snapshot> published_;
};

}  // namespace tollgate
