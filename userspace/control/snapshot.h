// The agent's state as of one change: an immutable value that readers hold
// while writers make the next one. Services are shared between snapshots
// until they change, so a change of one service costs that service, not
// the 10,000 beside it: the next snapshot copies a vector of pointers and
// shares the address index unless services came or went.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config.h"
#include "dataplane_target.h"
#include "state.h"

namespace tollgate {

// One service: as it was asked for, and where the data path keeps it.
struct ServiceEntry {
  ServiceSpec desired;
  std::optional<ServiceSlots> slots;  // none until it is applied
};

// The services in their configured order, found by address.
class ServiceTable {
 public:
  using Entries = std::vector<std::shared_ptr<const ServiceEntry>>;

  ServiceTable();
  explicit ServiceTable(Entries entries);  // addresses unique

  const Entries& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  // The services' own access-list entries, summed (kept as services come,
  // change and go: a change of one service does not walk the others).
  struct AclEntries {
    size_t allow = 0;
    size_t deny = 0;
  };
  AclEntries acl_entries() const { return acl_entries_; }
  const ServiceEntry* find(const ServiceAddress& address) const;
  std::shared_ptr<const ServiceEntry> shared(const ServiceAddress& address) const;
  // Replaces the service at the entry's address, or appends it.
  void put(std::shared_ptr<const ServiceEntry> entry);
  void erase(const ServiceAddress& address);

 private:
  void count(const ServiceEntry& entry, bool added);

  Entries entries_;
  std::shared_ptr<const std::map<ServiceAddress, size_t>> index_;  // address -> position
  AclEntries acl_entries_;
};

// The desired state but for its services: global settings, where the
// configuration came from, where the programs are attached.
struct Settings {
  FlowTimeouts timeouts;
  AccessLists access;
  EventSettings events;
  std::string config_digest;
  std::vector<std::string> xdp_interfaces;
  std::vector<std::string> tc_interfaces;

  bool same_globals(const Settings& other) const {
    return timeouts == other.timeouts && access == other.access && events == other.events;
  }
  bool operator==(const Settings&) const = default;
};

struct Snapshot {
  using ServiceIds = std::map<uint32_t, ServiceAddress>;
  using BackendIndices = std::map<uint32_t, BackendKey>;

  uint64_t version = 0;  // counts applied changes
  Settings settings;     // desired and persisted, with `services`
  ServiceTable services;
  // Out of selection for their health, whatever their desired state.
  std::set<BackendKey> held_down;
  // The way back from the numbers the data path reports.
  std::shared_ptr<const ServiceIds> service_by_id = std::make_shared<const ServiceIds>();
  std::shared_ptr<const BackendIndices> backend_by_index = std::make_shared<const BackendIndices>();

  // From the state as loaded (no slots yet), and back (as persisted).
  static Snapshot of(AgentState state);
  AgentState persisted() const;
  Config desired() const;

  const ServiceSpec* service(const ServiceAddress& address) const;
  // A desired spec as the data path runs it (held-down backends down).
  ServiceSpec effective(const ServiceSpec& desired) const;
  // Takes new flows: desired up and not held down.
  bool selectable(const ServiceAddress& service, const BackendSpec& backend) const;
  std::optional<uint32_t> backend_index(const ServiceAddress& service, const Endpoint& backend) const;
  std::optional<uint32_t> service_id(const ServiceAddress& service) const;
  // Records that the data path moved services from slots `before` to
  // `after` (none: not there).
  struct SlotChange {
    ServiceAddress address;
    std::optional<ServiceSlots> before, after;
  };
  void set_slots(std::vector<SlotChange> changes);
};

}  // namespace tollgate
