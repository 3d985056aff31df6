#include "controller.h"

#include "log.h"

namespace tollgate {
namespace {

bool same_globals(const Config& a, const Config& b) {
  return a.timeouts == b.timeouts && a.access == b.access && a.events == b.events;
}

ServiceSpec* find_service(Config& config, const ServiceAddress& address) {
  for (auto& service : config.services)
    if (service.address == address) return &service;
  return nullptr;
}

bool has_backend(const ServiceSpec& service, const Endpoint& endpoint) {
  for (const auto& backend : service.backends)
    if (backend.endpoint == endpoint) return true;
  return false;
}

}  // namespace

const ServiceSpec* Snapshot::service(const ServiceAddress& address) const {
  for (const auto& service : state.desired.services)
    if (service.address == address) return &service;
  return nullptr;
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
  auto found = slots.find(service);
  if (found == slots.end()) return std::nullopt;
  auto index = found->second.backends.find(backend);
  if (index == found->second.backends.end()) return std::nullopt;
  return index->second;
}

std::optional<uint32_t> Snapshot::service_id(const ServiceAddress& service) const {
  auto found = slots.find(service);
  if (found == slots.end()) return std::nullopt;
  return found->second.id;
}

Controller::Controller(DataplaneTarget& dataplane, const MapFds& maps, AuditLog& audit, std::string state_dir,
                       AgentState state)
    : dataplane_(dataplane), maps_(maps), audit_(audit), state_dir_(std::move(state_dir)) {
  Snapshot first;
  first.state = std::move(state);
  current_ = std::make_shared<const Snapshot>(std::move(first));
  published_ = current_;
}

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
  next.state.desired = desired;
  if (config_digest) next.state.config_digest = *config_digest;
  // Held-down backends that are gone are forgotten.
  std::erase_if(next.held_down, [&](const BackendKey& key) {
    const ServiceSpec* service = next.service(key.first);
    return !service || !has_backend(*service, key.second);
  });
  std::set<ServiceAddress> touched;
  for (const auto& service : desired.services) {
    const ServiceSpec* before = current_->service(service.address);
    if (!applied_ || !before || !(*before == service)) touched.insert(service.address);
  }
  for (const auto& service : current_->state.desired.services)
    if (!next.service(service.address)) touched.insert(service.address);
  if (!applied_)  // what the data path holds from before (adopted) and no longer wanted
    for (const auto& address : dataplane_.service_addresses()) touched.insert(address);
  return commit(std::move(next), touched, actor);
}

Status Controller::edit_service(const ServiceAddress& address, const ServiceEdit& edit, const nlohmann::json& actor) {
  std::lock_guard lock(mutex_);
  std::optional<ServiceSpec> service;
  if (const ServiceSpec* found = current_->service(address)) service = *found;
  const bool existed = service.has_value();
  if (auto status = edit(service); !status) return status;
  if (service && service->address != address)
    return make_error(ErrorKind::internal, "an edit of service {} changed its address", address.to_string());
  Snapshot next = *current_;
  Config& desired = next.state.desired;
  if (service) {
    if (auto status = validate_service(*service); !status) return with_context(status.error(), address.to_string());
    if (ServiceSpec* slot = find_service(desired, address))
      *slot = std::move(*service);
    else
      desired.services.push_back(std::move(*service));
  } else if (existed) {
    std::erase_if(desired.services, [&](const ServiceSpec& spec) { return spec.address == address; });
  } else {
    return {};
  }
  const ServiceSpec* after = next.service(address);
  std::erase_if(next.held_down, [&](const BackendKey& key) {
    return key.first == address && (!after || !has_backend(*after, key.second));
  });
  return commit(std::move(next), {address}, actor);
}

Status Controller::edit_globals(const ConfigEdit& edit, const nlohmann::json& actor) {
  std::lock_guard lock(mutex_);
  Snapshot next = *current_;
  if (auto status = edit(next.state.desired); !status) return status;
  if (!(next.state.desired.services == current_->state.desired.services))
    return make_error(ErrorKind::internal, "an edit of the global settings changed services");
  return commit(std::move(next), {}, actor);
}

Status Controller::commit(Snapshot next, const std::set<ServiceAddress>& touched, const nlohmann::json& actor) {
  const Config& desired = next.state.desired;
  // One service changed alone (an API edit, the health loop): checked,
  // persisted and reconciled without walking the others.
  const ServiceSpec* single = nullptr;
  const bool one_service = applied_ && touched.size() == 1 && same_globals(current_->state.desired, desired) &&
                           next.state.config_digest == current_->state.config_digest;
  if (one_service) single = next.service(*touched.begin());
  if (one_service && single) {
    if (auto status = dataplane_.check_service_capacity(*single); !status) return status;
  } else if (!one_service) {
    if (auto status = dataplane_.check_capacity(desired.services); !status) return status;
  }
  if (auto status = check_policy_capacity(desired); !status) return status;
  const bool state_changed = !(next.state == current_->state);
  if (applied_ && !state_changed && next.held_down == current_->held_down) return {};
  auto persist = [&](const AgentState& state) {
    return one_service ? save_service_change(state_dir_, state, *touched.begin()) : save_state(state_dir_, state);
  };
  // Persist first: a crash after this point restarts into the new state.
  if (state_changed)
    if (auto status = persist(next.state); !status) return status;
  if (auto status = reconcile(*current_, next, touched); !status) {
    Status restored = applied_ ? reconcile(next, *current_, touched) : Status{};
    Status saved = state_changed ? persist(current_->state) : Status{};
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
  for (const auto& address : touched) {
    if (auto old = next.slots.find(address); old != next.slots.end()) {
      next.service_by_id.erase(old->second.id);
      for (const auto& [endpoint, index] : old->second.backends) next.backend_by_index.erase(index);
      next.slots.erase(old);
    }
    auto slots = dataplane_.slots(address);
    if (!slots || !next.service(address)) continue;
    next.service_by_id[slots->id] = address;
    for (const auto& [endpoint, index] : slots->backends) next.backend_by_index[index] = {address, endpoint};
    next.slots.emplace(address, std::move(*slots));
  }
  audit_backend_changes(*current_, next, touched, actor);
  ++next.version;
  applied_ = true;
  publish(std::move(next));
  return {};
}

Status Controller::reconcile(const Snapshot& from, const Snapshot& to, const std::set<ServiceAddress>& touched) {
  const Config& desired = to.state.desired;
  if (!applied_ || !same_globals(from.state.desired, desired)) {
    if (auto status = dataplane_.set_timeouts(desired.timeouts); !status) return status;
    if (auto status = dataplane_.set_global_policy(desired.access, desired.events); !status) return status;
  }
  // Removals first: their slots are free for what is added.
  for (const auto& address : touched) {
    if (to.service(address) || !dataplane_.slots(address)) continue;
    if (auto status = dataplane_.remove_service(address); !status)
      return with_context(status.error(), address.to_string());
  }
  std::vector<ServiceSpec> changed;
  for (const auto& service : desired.services)
    if (touched.contains(service.address)) changed.push_back(to.effective(service));
  if (changed.size() == 1) {
    if (auto status = dataplane_.apply_service(changed[0]); !status)
      return with_context(status.error(), fmt::format("service {}", changed[0].address.to_string()));
    return {};
  }
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
  return commit(std::move(next), {key.first}, {{"source", "health"}});
}

Status Controller::set_interfaces(std::vector<std::string> xdp, std::vector<std::string> tc) {
  std::lock_guard lock(mutex_);
  AgentState state = current_->state;
  state.xdp_interfaces = std::move(xdp);
  state.tc_interfaces = std::move(tc);
  if (state == current_->state) return {};
  if (auto status = save_state(state_dir_, state); !status) return status;
  Snapshot next = *current_;
  next.state = std::move(state);
  publish(std::move(next));
  return {};
}

void Controller::audit_backend_changes(const Snapshot& before, const Snapshot& after,
                                       const std::set<ServiceAddress>& touched, const nlohmann::json& actor) {
  for (const auto& address : touched) {
    std::map<Endpoint, std::pair<std::string_view, std::string_view>> changes;
    if (const ServiceSpec* service = before.service(address))
      for (const auto& backend : service->backends)
        changes[backend.endpoint] = {backend_state_name(backend.state), "absent"};
    if (const ServiceSpec* service = after.service(address))
      for (const auto& backend : service->backends) {
        auto [it, added] = changes.try_emplace(backend.endpoint, "absent", backend_state_name(backend.state));
        if (!added) it->second.second = backend_state_name(backend.state);
      }
    for (const auto& [endpoint, change] : changes) {
      if (change.first == change.second) continue;
      audit_.record({{"event", "backend_state"},
                     {"service", address.to_string()},
                     {"backend", endpoint.to_string()},
                     {"before", change.first},
                     {"after", change.second},
                     {"actor", actor}});
    }
  }
}

}  // namespace tollgate
