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
#include "state.h"

namespace tollgate {

// The state as of one change. Cheap to hold; never changes.
struct Snapshot {
  uint64_t version = 0;  // counts applied changes
  AgentState state;      // desired, as persisted
  // Out of selection for their health, whatever their desired state.
  std::set<BackendKey> held_down;
  // Where the data path keeps each service, and the way back from the
  // numbers it reports.
  std::map<ServiceAddress, ServiceSlots> slots;
  std::map<uint32_t, ServiceAddress> service_by_id;
  std::map<uint32_t, BackendKey> backend_by_index;

  const ServiceSpec* service(const ServiceAddress& address) const;
  // A desired spec as the data path runs it (held-down backends down).
  ServiceSpec effective(const ServiceSpec& desired) const;
  // Takes new flows: desired up and not held down.
  bool selectable(const ServiceAddress& service, const BackendSpec& backend) const;
  std::optional<uint32_t> backend_index(const ServiceAddress& service, const Endpoint& backend) const;
  std::optional<uint32_t> service_id(const ServiceAddress& service) const;
};

class Controller {
 public:
  // `state` is the desired state loaded at start; the data path holds
  // nothing of it until the first apply().
  Controller(DataplaneTarget& dataplane, const MapFds& maps, AuditLog& audit, std::string state_dir, AgentState state);

  std::shared_ptr<const Snapshot> snapshot() const;
  // The data path's maps, for readers of counters and flows (their fds
  // never change).
  const MapFds& maps() const { return maps_; }

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
  // `edit` gets a copy of the desired config; its services must stay.
  using ConfigEdit = std::function<Status(Config& config)>;
  Status edit_globals(const ConfigEdit& edit, const nlohmann::json& actor);

  // Health overlay, not persisted: a held-down backend is down in the data
  // path (its flows move) until released. Only its service is rewritten.
  Status set_held_down(const BackendKey& key, bool down);
  // Records where the programs are attached (for an uninstall).
  Status set_interfaces(std::vector<std::string> xdp, std::vector<std::string> tc);

 private:
  // Persists `next`, reconciles the services in `touched` (and the global
  // settings when they changed) from `current` to `next`, publishes it; on
  // failure puts back `current`. Holds mutex_.
  Status commit(Snapshot next, const std::set<ServiceAddress>& touched, const nlohmann::json& actor);
  Status reconcile(const Snapshot& from, const Snapshot& to, const std::set<ServiceAddress>& touched);
  void publish(Snapshot next);
  void audit_backend_changes(const Snapshot& before, const Snapshot& after, const std::set<ServiceAddress>& touched,
                             const nlohmann::json& actor);

  mutable std::mutex mutex_;  // serializes writers; readers take snapshots
  DataplaneTarget& dataplane_;
  MapFds maps_;
  AuditLog& audit_;
  std::string state_dir_;
  std::shared_ptr<const Snapshot> current_;  // what the data path and the file hold
  bool applied_ = false;
  mutable std::mutex published_mutex_;  // guards the pointer only
  std::shared_ptr<const Snapshot> published_;
};

}  // namespace tollgate
