#include "snapshot.h"

namespace tollgate {
namespace {

using Index = std::map<ServiceAddress, size_t>;

std::shared_ptr<const Index> index_of(const ServiceTable::Entries& entries) {
  auto index = std::make_shared<Index>();
  for (size_t i = 0; i < entries.size(); ++i) index->emplace(entries[i]->desired.address, i);
  return index;
}

}  // namespace

ServiceTable::ServiceTable() : index_(std::make_shared<const Index>()) {}

ServiceTable::ServiceTable(Entries entries) : entries_(std::move(entries)), index_(index_of(entries_)) {
  for (const auto& entry : entries_) count(*entry, true);
}

void ServiceTable::count(const ServiceEntry& entry, bool added) {
  const AccessLists& access = entry.desired.policy.access;
  if (added) {
    acl_entries_.allow += access.allow.size();
    acl_entries_.deny += access.deny.size();
  } else {
    acl_entries_.allow -= access.allow.size();
    acl_entries_.deny -= access.deny.size();
  }
}

const ServiceEntry* ServiceTable::find(const ServiceAddress& address) const {
  auto found = index_->find(address);
  return found == index_->end() ? nullptr : entries_[found->second].get();
}

std::shared_ptr<const ServiceEntry> ServiceTable::shared(const ServiceAddress& address) const {
  auto found = index_->find(address);
  return found == index_->end() ? nullptr : entries_[found->second];
}

void ServiceTable::put(std::shared_ptr<const ServiceEntry> entry) {
  count(*entry, true);
  if (auto found = index_->find(entry->desired.address); found != index_->end()) {
    count(*entries_[found->second], false);
    entries_[found->second] = std::move(entry);  // the index stays shared
    return;
  }
  auto index = std::make_shared<Index>(*index_);
  index->emplace(entry->desired.address, entries_.size());
  entries_.push_back(std::move(entry));
  index_ = std::move(index);
}

void ServiceTable::erase(const ServiceAddress& address) {
  auto found = index_->find(address);
  if (found == index_->end()) return;
  count(*entries_[found->second], false);
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(found->second));
  index_ = index_of(entries_);
}

Snapshot Snapshot::of(AgentState state) {
  Snapshot snapshot;
  snapshot.settings = {std::move(state.desired.timeouts), std::move(state.desired.access),
                       std::move(state.desired.events),   std::move(state.config_digest),
                       std::move(state.xdp_interfaces),   std::move(state.tc_interfaces)};
  ServiceTable::Entries entries;
  for (auto& service : state.desired.services)
    entries.push_back(std::make_shared<const ServiceEntry>(ServiceEntry{std::move(service), std::nullopt}));
  snapshot.services = ServiceTable(std::move(entries));
  return snapshot;
}

Config Snapshot::desired() const {
  Config config{settings.timeouts, settings.access, settings.events, {}};
  config.services.reserve(services.size());
  for (const auto& entry : services.entries()) config.services.push_back(entry->desired);
  return config;
}

AgentState Snapshot::persisted() const {
  return {desired(), settings.config_digest, settings.xdp_interfaces, settings.tc_interfaces};
}

const ServiceSpec* Snapshot::service(const ServiceAddress& address) const {
  const ServiceEntry* entry = services.find(address);
  return entry ? &entry->desired : nullptr;
}

ServiceSpec Snapshot::effective(const ServiceSpec& desired) const {
  ServiceSpec out = desired;
  if (held_down.empty()) return out;
  for (auto& backend : out.backends)
    if (held_down.contains({out.address, backend.endpoint})) backend.state = BackendState::down;
  return out;
}

bool Snapshot::selectable(const ServiceAddress& service, const BackendSpec& backend) const {
  return backend.state == BackendState::up && !held_down.contains({service, backend.endpoint});
}

std::optional<uint32_t> Snapshot::backend_index(const ServiceAddress& service, const Endpoint& backend) const {
  const ServiceEntry* entry = services.find(service);
  if (!entry || !entry->slots) return std::nullopt;
  auto index = entry->slots->backends.find(backend);
  if (index == entry->slots->backends.end()) return std::nullopt;
  return index->second;
}

std::optional<uint32_t> Snapshot::service_id(const ServiceAddress& service) const {
  const ServiceEntry* entry = services.find(service);
  if (!entry || !entry->slots) return std::nullopt;
  return entry->slots->id;
}

void Snapshot::set_slots(std::vector<SlotChange> changes) {
  // The reverse maps change only when slots do (a backend or a service
  // added or removed), not for a drain; they are copied once for all.
  std::shared_ptr<ServiceIds> ids;
  std::shared_ptr<BackendIndices> indices;
  for (auto& change : changes) {
    const bool moved = change.before.has_value() != change.after.has_value() ||
                       (change.before && !change.before->same_places(*change.after));
    if (moved) {
      if (!ids) {
        ids = std::make_shared<ServiceIds>(*service_by_id);
        indices = std::make_shared<BackendIndices>(*backend_by_index);
      }
      if (change.before) {
        ids->erase(change.before->id);
        for (const auto& [endpoint, index] : change.before->backends) indices->erase(index);
      }
      if (change.after) {
        (*ids)[change.after->id] = change.address;
        for (const auto& [endpoint, index] : change.after->backends) (*indices)[index] = {change.address, endpoint};
      }
    }
    const ServiceEntry* entry = services.find(change.address);
    if (entry && entry->slots != change.after)
      services.put(std::make_shared<const ServiceEntry>(ServiceEntry{entry->desired, std::move(change.after)}));
  }
  if (ids) {
    service_by_id = std::move(ids);
    backend_by_index = std::move(indices);
  }
}

}  // namespace tollgate
