#include "controller.h"

#include <map>

#include "log.h"
#include "reconcile.h"

namespace tollgate {

Controller::Controller(Dataplane& dataplane, const MapFds& maps, AuditLog& audit, std::string state_dir,
                       AgentState state)
    : dataplane_(dataplane), maps_(maps), audit_(audit), state_dir_(std::move(state_dir)), state_(std::move(state)) {}

Status Controller::apply(const Config& desired, const nlohmann::json& actor,
                         const std::optional<std::string>& config_digest) {
  if (auto status = dataplane_.check_capacity(desired.services); !status) return status;
  if (auto status = check_policy_capacity(desired); !status) return status;
  AgentState next = state_;
  next.desired = desired;
  if (config_digest) next.config_digest = *config_digest;
  // Persist first: a crash after this point restarts into the new state.
  if (auto status = save_state(state_dir_, next); !status) return status;
  if (auto status = reconcile(dataplane_, effective(desired)); !status) {
    Status restored = reconcile(dataplane_, effective(state_.desired));
    Status saved = save_state(state_dir_, state_);
    if (!restored || !saved) {
      log::error("could not restore the previous state after a failed change: {}",
                 !restored ? restored.error().message : saved.error().message);
      return make_error("{} (and restoring the previous state failed: {})", status.error().message,
                        !restored ? restored.error().message : saved.error().message);
    }
    return make_error("{} (the previous state is back in place)", status.error().message);
  }
  audit_backend_changes(state_.desired, desired, actor);
  state_ = std::move(next);
  ++version_;
  std::erase_if(held_down_, [&](const BackendKey& key) {
    for (const auto& service : desired.services)
      if (service.address == key.first)
        for (const auto& backend : service.backends)
          if (backend.endpoint == key.second) return false;
    return true;
  });
  return {};
}

Config Controller::effective(const Config& desired) const {
  if (held_down_.empty()) return desired;
  Config out = desired;
  for (auto& service : out.services)
    for (auto& backend : service.backends)
      if (held_down_.contains({service.address, backend.endpoint})) backend.state = BackendState::down;
  return out;
}

Status Controller::set_held_down(const BackendKey& key, bool down) {
  if (held_down_.contains(key) == down) return {};
  const ServiceSpec* service = nullptr;
  for (const auto& spec : state_.desired.services)
    if (spec.address == key.first) service = &spec;
  if (!service) return make_error("service {} does not exist", key.first.to_string());
  if (down)
    held_down_.insert(key);
  else
    held_down_.erase(key);
  ServiceSpec spec = *service;
  for (auto& backend : spec.backends)
    if (held_down_.contains({spec.address, backend.endpoint})) backend.state = BackendState::down;
  if (auto status = dataplane_.apply_service(spec); !status) {
    if (down)
      held_down_.erase(key);
    else
      held_down_.insert(key);
    return status;
  }
  return {};
}

Status Controller::set_interfaces(std::vector<std::string> xdp, std::vector<std::string> tc) {
  AgentState next = state_;
  next.xdp_interfaces = std::move(xdp);
  next.tc_interfaces = std::move(tc);
  if (next == state_) return {};
  if (auto status = save_state(state_dir_, next); !status) return status;
  state_ = std::move(next);
  return {};
}

void Controller::audit_backend_changes(const Config& before, const Config& after, const nlohmann::json& actor) {
  using Key = std::pair<ServiceAddress, Endpoint>;
  auto states = [](const Config& config) {
    std::map<Key, std::string_view> out;
    for (const auto& service : config.services)
      for (const auto& backend : service.backends)
        out[{service.address, backend.endpoint}] = backend_state_name(backend.state);
    return out;
  };
  auto old_states = states(before);
  auto new_states = states(after);
  std::map<Key, std::pair<std::string_view, std::string_view>> changes;
  for (const auto& [key, state] : old_states) changes[key] = {state, "absent"};
  for (const auto& [key, state] : new_states) {
    auto it = changes.find(key);
    if (it == changes.end())
      changes[key] = {"absent", state};
    else
      it->second.second = state;
  }
  for (const auto& [key, change] : changes) {
    if (change.first == change.second) continue;
    audit_.record({{"event", "backend_state"},
                   {"service", key.first.to_string()},
                   {"backend", key.second.to_string()},
                   {"before", change.first},
                   {"after", change.second},
                   {"actor", actor}});
  }
}

}  // namespace tollgate
