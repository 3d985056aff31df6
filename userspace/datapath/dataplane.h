// Writes services, backends and Maglev tables into the data path's maps.
//
// Ordering keeps every packet consistent: a backend slot is written before
// any table points at it; a table is filled aside (the standby of a pair)
// and switched in with one write of the outer map; a removed backend's slot
// is released only after no table points at it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "address.h"
#include "dataplane_target.h"
#include "loader.h"
#include "policy_maps.h"
#include "result.h"
#include "spec.h"

namespace tollgate {

// How many map entries the last apply_service() wrote, and how long its
// table switch took (the kernel's wait for an RCU grace period).
struct WriteCounts {
  size_t backend_entries = 0;
  size_t table_entries = 0;
  std::chrono::nanoseconds table_switch{0};
};

class Dataplane final : public DataplaneTarget {
 public:
  explicit Dataplane(const DataPathMaps& maps);
  ~Dataplane();
  Dataplane(const Dataplane&) = delete;
  Dataplane& operator=(const Dataplane&) = delete;

  // Takes over what an earlier agent left in adopted (pinned) maps:
  // services, backend slots with their generations, and the tables in use,
  // so that applying the same specs again keeps every slot and with it
  // every established flow. What no service owns any more (a crash in the
  // middle of a change) is cleaned up. Call once, before any change.
  Status adopt();
  // What adopt() found, as a configuration (the timeouts included).
  std::vector<ServiceSpec> service_specs() const;

  Status set_timeouts(const FlowTimeouts& timeouts) override;
  // The global access lists and the event settings (tg_config), in an
  // order that never applies half a list: entries first, flags, then the
  // stale entries go.
  Status set_global_policy(const AccessLists& access, const EventSettings& events) override;
  // Creates the service or brings it to `spec`.
  Status apply_service(const ServiceSpec& spec) override;
  // apply_service() for each, with the tables of the new ones switched in
  // by one write (one RCU grace period for all, not one each).
  Status apply_services(const std::vector<ServiceSpec>& specs) override;
  Status remove_service(const ServiceAddress& address) override;
  // Whether the data path can hold `services` (the whole desired set),
  // counted at the peak of a change: a removed backend's slot is released
  // only after its service's new table is in place.
  Status check_capacity(const std::vector<ServiceSpec>& services) const override;
  Status check_service_capacity(const ServiceSpec& spec) const override;

  std::vector<ServiceAddress> service_addresses() const override;
  const ServiceSpec* service_spec(const ServiceAddress& address) const;
  std::optional<ServiceSlots> slots(const ServiceAddress& address) const override;
  std::optional<uint32_t> service_id(const ServiceAddress& address) const;
  std::optional<uint32_t> backend_index(const ServiceAddress& address, const Endpoint& backend) const;
  // The table the data path uses now (backend indexes; TG_BACKEND_NONE).
  const std::vector<uint32_t>* active_table(const ServiceAddress& address) const;
  const WriteCounts& last_write() const { return last_write_; }

 private:
  struct Table {
    int fd = -1;
    std::vector<uint32_t> entries;  // what the kernel map holds
    uint32_t listed = 0;            // entries at its end that list the backends
    uint64_t digest = 0;            // maglev_digest() of its table (0: adopted, not rebuilt yet)
  };
  struct ServiceState {
    uint32_t id = 0;
    ServiceSpec spec;
    std::map<Endpoint, uint32_t> backend_indexes;
    std::array<Table, 2> tables;
    int active_table = -1;  // index into tables, -1 before the first
    // The last apply of `spec` completed: the kernel holds it (false after
    // a failed one, so that applying the same spec again retries).
    bool converged = false;
    // Its address counted in tg_vip_addresses, and its tg_services entry
    // written: packets find it (a failed first apply may leave either undone).
    bool address_counted = false;
    bool visible = false;
    // TG_SERVICE_REVERSE_ENTRIES and listed_backends as its tg_services
    // entry has them.
    bool reverse_entries = false;
    uint32_t listed_backends = 0;
  };
  class IndexPool {
   public:
    IndexPool(uint32_t first, uint32_t end) : next_(first), end_(end) {}
    size_t available() const { return free_.size() + (end_ - next_); }
    uint32_t allocate();
    // Marks `index` as in use (adopting what the kernel holds).
    void take(uint32_t index);
    void release(uint32_t index) { free_.insert(index); }

   private:
    std::set<uint32_t> free_;
    uint32_t next_;
    uint32_t end_;
  };

  // Byte order of plain ABI keys.
  struct KeyLess {
    template <typename Key>
    bool operator()(const Key& a, const Key& b) const {
      return std::memcmp(&a, &b, sizeof(Key)) < 0;
    }
  };
  // The keys of a presence map (tg_vip_addresses), counted by who uses them: a key is written when its first user comes
  // and removed when its last goes. A count changes only once the kernel
  // has the change.
  template <typename Key>
  class KeyReferences {
   public:
    explicit KeyReferences(const MapHandle& map) : map_(map) {}
    Status hold(const Key& key);
    Status release(const Key& key);
    // The counts of what the services use (adopt()): the kernel's other
    // keys go, these are written.
    Status adopt(std::map<Key, uint32_t, KeyLess> counts);

   private:
    const MapHandle& map_;
    std::map<Key, uint32_t, KeyLess> counts_;
  };

  // tg_vip_filter: the bit of every service address is set while some
  // service has that address (held before the service is visible, given
  // up after it is gone); a bit several addresses share stays set until
  // the last goes.
  class VipFilter {
   public:
    explicit VipFilter(const MapHandle& map) : map_(map) {}
    Status hold(const tg_vip_address& key);
    // Should the write fail, the bit stays set in the kernel: harmless.
    Status release(const tg_vip_address& key);
    // The services' addresses (adopt()): every word is written.
    Status adopt(const std::map<tg_vip_address, uint32_t, KeyLess>& addresses);

   private:
    Status write_word(uint32_t word) const;
    const MapHandle& map_;
    std::map<uint32_t, uint32_t> bits_;  // bit -> holders
  };

  // tg_backend_endpoints: each backend endpoint and the services that have
  // it, in the order they came; the value lists the first
  // TG_ENDPOINT_SERVICES, written when one of those comes or goes. The reply
  // path finds a flow through it.
  class EndpointServices {
   public:
    explicit EndpointServices(const MapHandle& map) : map_(map) {}
    // Whether the value of `key` lists `service`.
    bool lists(const tg_backend_endpoint& key, const tg_endpoint_service& service) const;
    Status hold(const tg_backend_endpoint& key, const tg_endpoint_service& service);
    Status release(const tg_backend_endpoint& key, const tg_endpoint_service& service);
    // The services' endpoints (adopt()): the kernel's other keys go, these
    // are written.
    using Holders = std::map<tg_backend_endpoint, std::vector<tg_endpoint_service>, KeyLess>;
    Status adopt(Holders holders);

   private:
    Status write(const tg_backend_endpoint& key, const std::vector<tg_endpoint_service>& services) const;
    const MapHandle& map_;
    Holders holders_;
  };

  // A service's id -> its address, as adopt_services() found them.
  using ServiceIds = std::map<uint32_t, ServiceAddress>;
  // The sections of adopt(), in the order it calls them.
  Result<ServiceIds> adopt_services();
  Status adopt_backends(const ServiceIds& by_id);
  Status adopt_tables(const ServiceIds& by_id);
  Status adopt_policy(const ServiceIds& by_id);
  Status adopt_addresses();

  // Brings the kernel to next.spec from `previous` (none: a new service).
  Status apply_steps(ServiceState& next, const ServiceSpec* previous, bool defer_switch);
  Status finish_pending();
  Status make_visible(ServiceState& service);
  Status write_backend_value(uint32_t index, const tg_backend& value);
  Status write_backend(const ServiceState& service, uint32_t index, const BackendSpec& backend);
  Status release_backend(uint32_t index);
  // Fills the standby table with `built`'s entries and (unless deferred)
  // switches it in.
  Status install_table(ServiceState& service, Table built, bool defer_switch = false);
  // Its flows need reverse entries: a service of every port, or one a
  // backend's endpoint does not list.
  bool needs_reverse_entries(const ServiceState& service) const;
  // Backends listed after the table in place (0 before the first).
  static uint32_t active_listed(const ServiceState& service);
  // The tg_services entry, with the Maglev size the table in place has.
  Status write_service_value(ServiceState& service, uint32_t maglev_size);
  static tg_vip_address vip_key(const IpAddress& address);
  // Where a backend of `service` sends from (tg_backend_endpoints), and the
  // service as that map's value names it.
  static tg_backend_endpoint endpoint_key(const ServiceSpec& service, const Endpoint& backend);
  static tg_endpoint_service endpoint_service(const ServiceSpec& service);
  // Gives up a backend's slot and its endpoint's reference; `backend`
  // moves on to the next of service.backend_indexes.
  using BackendIterator = std::map<Endpoint, uint32_t>::iterator;
  Status remove_backend(ServiceState& service, BackendIterator& backend);
  // The Maglev table of the service's up backends, then their list in
  // endpoint order (no fd). `indexes`: the slot of each backend of
  // service.spec, in its order.
  Table build_table(const ServiceState& service, const std::vector<uint32_t>& indexes) const;

  Status write_config();

  DataPathMaps maps_;
  tg_config config_{};
  std::map<ServiceAddress, ServiceState> services_;
  KeyReferences<tg_vip_address> vip_addresses_{maps_.vip_addresses};
  VipFilter vip_filter_{maps_.vip_filter};
  EndpointServices backend_endpoints_{maps_.backend_endpoints};
  IndexPool service_ids_{0, TG_MAX_SERVICES};
  IndexPool backend_slots_{1, TG_MAX_BACKENDS};
  std::vector<uint32_t> generations_ = std::vector<uint32_t>(TG_MAX_BACKENDS, 0);
  WriteCounts last_write_;
  // apply_services(): new services whose tables wait to be switched in.
  bool deferring_ = false;
  std::vector<ServiceAddress> pending_;
  // What each backend slot holds in the kernel, as last written by us.
  std::map<uint32_t, tg_backend> written_backends_;
};

}  // namespace tollgate
