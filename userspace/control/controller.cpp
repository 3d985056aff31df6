#include "controller.h"

#include "log.h"

namespace tollgate {
namespace {

bool has_backend(const ServiceSpec& service, const Endpoint& endpoint) {
  for (const auto& backend : service.backends)
    if (backend.endpoint == endpoint) return true;
  return false;
}

Settings settings_of(const Config& config, const Settings& rest) {
  Settings settings = rest;
  settings.timeouts = config.timeouts;
  settings.access = config.access;
  settings.events = config.events;
  return settings;
}

// check_policy_capacity() of the snapshot's desired state, without copying
// it or walking its services.
Status check_policy_capacity(const Snapshot& snapshot) {
  const ServiceTable::AclEntries services = snapshot.services.acl_entries();
  return check_acl_capacity(snapshot.settings.access.allow.size() + services.allow,
                            snapshot.settings.access.deny.size() + services.deny);
}

}  // namespace

Controller::Controller(DataplaneTarget& dataplane, const DataPathMaps& maps, AuditLog& audit, std::string state_dir,
                       AgentState state)
    : dataplane_(dataplane),
      maps_(maps),
      audit_(audit),
      state_dir_(std::move(state_dir)),
      current_(std::make_shared<const Snapshot>(Snapshot::of(std::move(state)))),
      published_(current_) {}

std::shared_ptr<const Snapshot> Controller::snapshot() const {
  std::lock_guard lock(published_mutex_);
  return published_;
}

void Controller::publish(Snapshot next) {
  current_ = std::make_shared<const Snapshot>(std::move(next));
  std::lock_guard lock(published_mutex_);
  published_ = current_;
}

Status Controller::apply(const Config& desired, const nlohmann::json& actor,
                         const std::optional<std::string>& config_digest) {
  std::lock_guard lock(mutex_);
  Snapshot next = *current_;
  next.settings = settings_of(desired, current_->settings);
  if (config_digest) next.settings.config_digest = *config_digest;
  // Services that did not change stay shared with the current snapshot.
  std::set<ServiceAddress> touched;
  ServiceTable::Entries entries;
  for (const auto& service : desired.services) {
    auto before = current_->services.shared(service.address);
    if (applied_ && before && before->desired == service) {
      entries.push_back(std::move(before));
      continue;
    }
    touched.insert(service.address);
    entries.push_back(std::make_shared<const ServiceEntry>(
        ServiceEntry{service, before ? before->slots : std::optional<ServiceSlots>()}));
  }
  next.services = ServiceTable(std::move(entries));
  for (const auto& entry : current_->services.entries())
    if (!next.services.find(entry->desired.address)) touched.insert(entry->desired.address);
  if (!applied_)  // what the data path holds from before (adopted) and no longer wanted
    for (const auto& address : dataplane_.service_addresses()) touched.insert(address);
  // Held-down backends that are gone are forgotten.
  std::erase_if(next.held_down, [&](const BackendKey& key) {
    const ServiceSpec* service = next.service(key.first);
    return !service || !has_backend(*service, key.second);
  });
  const bool state_changed = !(next.settings == current_->settings) || !(desired == current_->desired());
  return commit(std::move(next), touched, state_changed, actor);
}

Status Controller::edit_service(const ServiceAddress& address, const ServiceEdit& edit, const nlohmann::json& actor) {
  std::lock_guard lock(mutex_);
  const ServiceEntry* before = current_->services.find(address);
  std::optional<ServiceSpec> service;
  if (before) service = before->desired;
  if (auto status = edit(service); !status) return status;
  if (service && service->address != address)
    return make_error(ErrorKind::internal, "an edit of service {} changed its address", address.to_string());
  if (!service && !before) return {};
  if (applied_ && service && before && *service == before->desired) return {};
  Snapshot next = *current_;
  if (service) {
    if (auto status = validate_service(*service); !status) return with_context(status.error(), address.to_string());
    next.services.put(std::make_shared<const ServiceEntry>(
        ServiceEntry{std::move(*service), before ? before->slots : std::optional<ServiceSlots>()}));
  } else {
    next.services.erase(address);
  }
  const ServiceSpec* after = next.service(address);
  std::erase_if(next.held_down, [&](const BackendKey& key) {
    return key.first == address && (!after || !has_backend(*after, key.second));
  });
  return commit(std::move(next), {address}, true, actor);
}

Status Controller::edit_globals(const SettingsEdit& edit, const nlohmann::json& actor) {
  std::lock_guard lock(mutex_);
  Snapshot next = *current_;
  if (auto status = edit(next.settings); !status) return status;
  const bool state_changed = !(next.settings == current_->settings);
  return commit(std::move(next), {}, state_changed, actor);
}

Status Controller::commit(Snapshot next, const std::set<ServiceAddress>& touched, bool state_changed,
                          const nlohmann::json& actor) {
  // One service changed alone (an API edit, the health loop): checked,
  // persisted and reconciled without walking the others.
  const bool one_service = applied_ && touched.size() == 1 && next.settings == current_->settings;
  const ServiceSpec* single = one_service ? next.service(*touched.begin()) : nullptr;
  if (single) {
    if (auto status = dataplane_.check_service_capacity(*single); !status) return status;
  } else if (!one_service) {
    if (auto status = dataplane_.check_capacity(next.desired().services); !status) return status;
  }
  if (auto status = check_policy_capacity(next); !status) return status;
  if (applied_ && !state_changed && next.held_down == current_->held_down) return {};
  auto persist = [&](const Snapshot& from, const Snapshot& to) {
    if (!one_service) return save_state(state_dir_, to.persisted());
    const ServiceAddress& address = *touched.begin();
    return save_service_change(state_dir_, address, from.service(address), to.service(address),
                               [&to] { return to.persisted(); });
  };
  // Persist first: a crash after this point restarts into the new state.
  if (state_changed)
    if (auto status = persist(*current_, next); !status) return status;
  if (auto status = reconcile(*current_, next, touched); !status) {
    Status restored = applied_ ? reconcile(next, *current_, touched) : Status{};
    Status saved = state_changed ? persist(next, *current_) : Status{};
    if (!restored || !saved) {
      const Error& second = !restored ? restored.error() : saved.error();
      log::error("could not restore the previous state after a failed change: {}", second.message);
      return Error{
          fmt::format("{} (and restoring the previous state failed: {})", status.error().message, second.message),
          status.error().kind, status.error().error_number};
    }
    Error error = status.error();
    error.message += " (the previous state is back in place)";
    return error;
  }
  // Where the data path now keeps the touched services.
  std::vector<Snapshot::SlotChange> slots;
  for (const auto& address : touched) {
    const ServiceEntry* before = current_->services.find(address);
    slots.push_back({address, before ? before->slots : std::nullopt,
                     next.service(address) ? dataplane_.slots(address) : std::nullopt});
  }
  next.set_slots(std::move(slots));
  audit_backend_changes(*current_, next, touched, actor);
  ++next.version;
  applied_ = true;
  publish(std::move(next));
  return {};
}

Status Controller::reconcile(const Snapshot& from, const Snapshot& to, const std::set<ServiceAddress>& touched) {
  if (!applied_ || !from.settings.same_globals(to.settings)) {
    if (auto status = dataplane_.set_timeouts(to.settings.timeouts); !status) return status;
    if (auto status = dataplane_.set_global_policy(to.settings.access, to.settings.events); !status) return status;
  }
  // Removals first: their slots are free for what is added.
  for (const auto& address : touched) {
    if (to.service(address) || !dataplane_.slots(address)) continue;
    if (auto status = dataplane_.remove_service(address); !status)
      return with_context(status.error(), address.to_string());
  }
  if (touched.size() == 1) {
    const ServiceSpec* service = to.service(*touched.begin());
    if (!service) return {};
    if (auto status = dataplane_.apply_service(to.effective(*service)); !status)
      return with_context(status.error(), fmt::format("service {}", service->address.to_string()));
    return {};
  }
  std::vector<ServiceSpec> changed;  // in the configured order
  for (const auto& entry : to.services.entries())
    if (touched.contains(entry->desired.address)) changed.push_back(to.effective(entry->desired));
  return dataplane_.apply_services(changed);
}

Status Controller::set_held_down(const BackendKey& key, bool down) {
  std::lock_guard lock(mutex_);
  if (current_->held_down.contains(key) == down) return {};
  const ServiceSpec* service = current_->service(key.first);
  if (!service) return make_error(ErrorKind::not_found, "service {} does not exist", key.first.to_string());
  if (!has_backend(*service, key.second))
    return make_error(ErrorKind::not_found, "backend {} is not in service {}", key.second.to_string(),
                      key.first.to_string());
  Snapshot next = *current_;
  if (down)
    next.held_down.insert(key);
  else
    next.held_down.erase(key);
  return commit(std::move(next), {key.first}, false, {{"source", "health"}});
}

Status Controller::set_interfaces(std::vector<std::string> xdp, std::vector<std::string> tc) {
  std::lock_guard lock(mutex_);
  Snapshot next = *current_;
  next.settings.xdp_interfaces = std::move(xdp);
  next.settings.tc_interfaces = std::move(tc);
  if (next.settings == current_->settings) return {};
  if (auto status = save_state(state_dir_, next.persisted()); !status) return status;
  publish(std::move(next));
  return {};
}

void Controller::audit_backend_changes(const Snapshot& before, const Snapshot& after,
                                       const std::set<ServiceAddress>& touched, const nlohmann::json& actor) {
  auto record = [&](const ServiceAddress& address, const Endpoint& endpoint, std::string_view from,
                    std::string_view to) {
    if (from == to) return;
    audit_.record({{"event", "backend_state"},
                   {"service", address.to_string()},
                   {"backend", endpoint.to_string()},
                   {"before", from},
                   {"after", to},
                   {"actor", actor}});
  };
  for (const auto& address : touched) {
    const ServiceSpec* was = before.service(address);
    const ServiceSpec* is = after.service(address);
    // In the service's order: those there now, then those gone.
    std::vector<bool> kept(was ? was->backends.size() : 0, false);
    if (is) {
      const std::vector<const BackendSpec*> matched = match_backends(*is, was);
      for (size_t i = 0; i < matched.size(); ++i) {
        const BackendSpec& backend = is->backends[i];
        if (matched[i]) kept[static_cast<size_t>(matched[i] - was->backends.data())] = true;
        record(address, backend.endpoint, matched[i] ? backend_state_name(matched[i]->state) : "absent",
               backend_state_name(backend.state));
      }
    }
    for (size_t i = 0; i < kept.size(); ++i)
      if (!kept[i]) record(address, was->backends[i].endpoint, backend_state_name(was->backends[i].state), "absent");
  }
}

}  // namespace tollgate
