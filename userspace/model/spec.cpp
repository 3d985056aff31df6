#include "spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <string>

#include "maglev.h"

namespace tollgate {

std::string_view scheduler_name(Scheduler scheduler) {
  switch (scheduler) {
    case Scheduler::maglev: return "maglev";
    case Scheduler::source_hash: return "source-hash";
    case Scheduler::round_robin: return "round-robin";
    case Scheduler::random: return "random";
    case Scheduler::least_connections: return "least-connections";
    case Scheduler::least_requests: return "least-requests";
  }
  return "?";
}

Result<Scheduler> parse_scheduler(std::string_view name) {
  std::string names;
  for (Scheduler scheduler : kSchedulers) {
    if (scheduler_name(scheduler) == name) return scheduler;
    names += fmt::format("{}{}", names.empty() ? "" : ", ", scheduler_name(scheduler));
  }
  return make_error(ErrorKind::invalid, "'{}' is not a scheduler (one of {})", name, names);
}

Status validate_service(const ServiceSpec& spec) {
  const auto& address = spec.address;
  if (spec.source_prefix) {
    const unsigned bits = address.endpoint.address.family == Family::ipv4 ? 32 : 128;
    if (spec.scheduler != Scheduler::source_hash)
      return make_error(ErrorKind::invalid, "source_prefix: only the source-hash scheduler has one, not {}",
                        scheduler_name(spec.scheduler));
    if (*spec.source_prefix < 1 || *spec.source_prefix > bits)
      return make_error(ErrorKind::invalid, "source_prefix: {} is out of range 1-{} for this service's family",
                        *spec.source_prefix, bits);
  }
  if (!is_prime(spec.maglev_size) || spec.maglev_size > TG_MAGLEV_MAX_SIZE)
    return make_error(ErrorKind::invalid, "maglev_size: {} is not a prime between 2 and {}", spec.maglev_size,
                      TG_MAGLEV_MAX_SIZE);
  if (spec.backends.size() > spec.maglev_size)
    return make_error(ErrorKind::invalid, "backends: {} backends do not fit a Maglev table of {} entries",
                      spec.backends.size(), spec.maglev_size);
  std::set<Endpoint> seen;
  for (size_t i = 0; i < spec.backends.size(); ++i) {
    const auto& backend = spec.backends[i];
    if (backend.endpoint.address.family != address.endpoint.address.family)
      return make_error(ErrorKind::invalid, "backends[{}]: {} is not of the service's address family", i,
                        backend.endpoint.to_string());
    if (backend.endpoint.port == 0)
      return make_error(ErrorKind::invalid, "backends[{}]: port 0 is not a backend port", i);
    if (backend.weight < 1 || backend.weight > kMaxWeight)
      return make_error(ErrorKind::invalid, "backends[{}]: weight {} is out of range 1-{}", i, backend.weight,
                        kMaxWeight);
    if (!seen.insert(backend.endpoint).second)
      return make_error(ErrorKind::invalid, "backends[{}]: {} is listed twice", i, backend.endpoint.to_string());
  }
  return {};
}

std::vector<const BackendSpec*> match_backends(const ServiceSpec& after, const ServiceSpec* before) {
  std::vector<const BackendSpec*> matched(after.backends.size(), nullptr);
  if (!before) return matched;
  const auto by_endpoint = [](const BackendSpec* a, const BackendSpec* b) { return a->endpoint < b->endpoint; };
  std::vector<const BackendSpec*> sorted;  // `before` by address, made at the first miss
  for (size_t i = 0; i < after.backends.size(); ++i) {
    const BackendSpec& backend = after.backends[i];
    if (i < before->backends.size() && before->backends[i].endpoint == backend.endpoint) {
      matched[i] = &before->backends[i];
      continue;
    }
    if (sorted.empty()) {
      for (const auto& old : before->backends) sorted.push_back(&old);
      std::sort(sorted.begin(), sorted.end(), by_endpoint);
    }
    auto found = std::lower_bound(sorted.begin(), sorted.end(), &backend, by_endpoint);
    if (found != sorted.end() && (*found)->endpoint == backend.endpoint) matched[i] = *found;
  }
  return matched;
}

}  // namespace tollgate
