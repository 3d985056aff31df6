#include "spec.h"

#include <algorithm>
#include <set>

#include "maglev.h"

namespace tollgate {

Status validate_service(const ServiceSpec& spec) {
  const auto& address = spec.address;
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
