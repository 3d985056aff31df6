// What the controller changes in the data path, and the numbers it learns
// back (service ids, backend slots) to name what the data path reports.
// Dataplane writes the kernel's maps; the unit tests run the controller and
// the API against an in-memory fake that can fail any write.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "address.h"
#include "policy.h"
#include "result.h"
#include "spec.h"

namespace tollgate {

// Where the data path keeps one service: its id and its backends' slots;
// and the digest of the Maglev table it holds for it (maglev_digest()).
struct ServiceSlots {
  uint32_t id = 0;
  std::map<Endpoint, uint32_t> backends;
  uint64_t table_digest = 0;

  bool same_places(const ServiceSlots& other) const { return id == other.id && backends == other.backends; }

  bool operator==(const ServiceSlots&) const = default;
};

class DataplaneTarget {
 public:
  virtual ~DataplaneTarget() = default;

  // Whether the data path can hold `services` (the whole desired set).
  virtual Status check_capacity(const std::vector<ServiceSpec>& services) const = 0;
  // The same for one service in place of what the data path holds at its
  // address (without walking every other service).
  virtual Status check_service_capacity(const ServiceSpec& spec) const = 0;
  virtual Status set_timeouts(const FlowTimeouts& timeouts) = 0;
  virtual Status set_global_policy(const AccessLists& access, const EventSettings& events) = 0;
  // Creates the service or brings it to `spec`; a spec the data path
  // holds already costs nothing.
  virtual Status apply_service(const ServiceSpec& spec) = 0;
  // Several at once (a config applied whole); an error names the service.
  virtual Status apply_services(const std::vector<ServiceSpec>& specs) = 0;
  virtual Status remove_service(const ServiceAddress& address) = 0;
  virtual std::vector<ServiceAddress> service_addresses() const = 0;
  virtual std::optional<ServiceSlots> slots(const ServiceAddress& address) const = 0;
};

}  // namespace tollgate
