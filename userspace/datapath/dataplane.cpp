#include "dataplane.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>

#include "flow_walk.h"
#include "maglev.h"
#include "stats.h"

namespace tollgate {
namespace {

std::string errno_text() { return std::strerror(errno); }

// A table entry whose kernel value is not known (never a backend index).
constexpr uint32_t kUnknownEntry = UINT32_MAX;

// The value of a presence map's entry (tg_vip_addresses), unused: the data
// path asks only whether a key is there.
constexpr uint32_t kPresent = 0;

uint64_t nanoseconds(std::chrono::seconds value) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(value).count());
}

Status update(const MapHandle& map, const void* key, const void* value) {
  return map.update_bytes(key, value, BPF_ANY);
}

// A key already gone is not an error.
Status remove(const MapHandle& map, const void* key) {
  if (auto removed = map.remove_bytes(key); !removed) return removed.error();
  return {};
}

void set_timeouts_fields(tg_config& config, const FlowTimeouts& timeouts) {
  config.tcp_syn_timeout_ns = nanoseconds(timeouts.tcp_syn);
  config.tcp_established_timeout_ns = nanoseconds(timeouts.tcp_established);
  config.tcp_closing_timeout_ns = nanoseconds(timeouts.tcp_closing);
  config.udp_timeout_ns = nanoseconds(timeouts.udp);
}

bool same_service(const tg_endpoint_service& a, const tg_endpoint_service& b) {
  return std::memcmp(&a, &b, sizeof(a)) == 0;
}

// Each CPU gets an equal share of the budget, rounded up.
void set_event_fields(tg_config& config, const EventSettings& events) {
  const int cpus = std::max(libbpf_num_possible_cpus(), 1);
  config.event_interval_ns = static_cast<uint64_t>(std::chrono::nanoseconds(events.interval).count());
  config.events_per_cpu = (events.per_second + static_cast<uint32_t>(cpus) - 1) / static_cast<uint32_t>(cpus);
}

}  // namespace

uint32_t Dataplane::IndexPool::allocate() {
  if (!free_.empty()) {
    uint32_t index = *free_.begin();
    free_.erase(free_.begin());
    return index;
  }
  return next_++;
}

void Dataplane::IndexPool::take(uint32_t index) {
  if (index >= next_) {
    for (uint32_t skipped = next_; skipped < index; ++skipped) free_.insert(skipped);
    next_ = index + 1;
  } else {
    free_.erase(index);
  }
}

template <typename Key>
Status Dataplane::KeyReferences<Key>::hold(const Key& key) {
  auto [it, added] = counts_.try_emplace(key, 0);
  if (added) {
    if (auto status = update(map_, &key, &kPresent); !status) {
      counts_.erase(it);
      return status;
    }
  }
  ++it->second;
  return {};
}

template <typename Key>
Status Dataplane::KeyReferences<Key>::release(const Key& key) {
  auto it = counts_.find(key);
  if (it == counts_.end()) return {};
  if (it->second > 1) {
    --it->second;
    return {};
  }
  if (auto status = remove(map_, &key); !status) return status;
  counts_.erase(it);
  return {};
}

template <typename Key>
Status Dataplane::KeyReferences<Key>::adopt(std::map<Key, uint32_t, KeyLess> counts) {
  auto keys = all_keys<Key>(map_);
  if (!keys) return keys.error();
  for (const auto& stale : *keys)
    if (!counts.contains(stale))
      if (auto status = remove(map_, &stale); !status) return status;
  for (const auto& [key, count] : counts)
    if (auto status = update(map_, &key, &kPresent); !status) return status;
  counts_ = std::move(counts);
  return {};
}

Status Dataplane::VipFilter::write_word(uint32_t word) const {
  uint32_t bits = 0;
  for (auto it = bits_.lower_bound(word * 32); it != bits_.end() && it->first < (word + 1) * 32; ++it)
    bits |= 1u << (it->first % 32);
  return update(map_, &word, &bits);
}

Status Dataplane::VipFilter::hold(const tg_vip_address& key) {
  const uint32_t bit = tg_vip_filter_bit(key.addr);
  if (bits_[bit]++ > 0) return {};
  if (auto status = write_word(bit / 32); !status) {
    bits_.erase(bit);
    return status;
  }
  return {};
}

Status Dataplane::VipFilter::release(const tg_vip_address& key) {
  const uint32_t bit = tg_vip_filter_bit(key.addr);
  auto it = bits_.find(bit);
  if (it == bits_.end()) return {};
  if (--it->second > 0) return {};
  bits_.erase(it);
  return write_word(bit / 32);
}

Status Dataplane::VipFilter::adopt(const std::map<tg_vip_address, uint32_t, KeyLess>& addresses) {
  std::map<uint32_t, uint32_t> bits;
  for (const auto& [key, count] : addresses) bits[tg_vip_filter_bit(key.addr)] += count;
  bits_ = std::move(bits);
  for (uint32_t word = 0; word < TG_VIP_FILTER_WORDS; ++word)
    if (auto status = write_word(word); !status) return status;
  return {};
}

bool Dataplane::EndpointServices::lists(const tg_backend_endpoint& key, const tg_endpoint_service& service) const {
  auto it = holders_.find(key);
  if (it == holders_.end()) return false;
  const auto listed = std::min<size_t>(it->second.size(), TG_ENDPOINT_SERVICES);
  return std::any_of(it->second.begin(), it->second.begin() + static_cast<long>(listed),
                     [&](const auto& s) { return same_service(s, service); });
}

Status Dataplane::EndpointServices::write(const tg_backend_endpoint& key,
                                          const std::vector<tg_endpoint_service>& services) const {
  if (services.empty()) return remove(map_, &key);
  tg_endpoint_services value{};
  value.count = static_cast<uint32_t>(std::min<size_t>(services.size(), TG_ENDPOINT_SERVICES));
  std::copy_n(services.begin(), value.count, value.services);
  return update(map_, &key, &value);
}

// A service holds an endpoint once: the callers hold it for a backend new
// to the service.
Status Dataplane::EndpointServices::hold(const tg_backend_endpoint& key, const tg_endpoint_service& service) {
  std::vector<tg_endpoint_service>& services = holders_[key];
  services.push_back(service);
  if (services.size() > TG_ENDPOINT_SERVICES) return {};  // not listed: the value stays
  if (auto status = write(key, services); !status) {
    services.pop_back();
    if (services.empty()) holders_.erase(key);
    return status;
  }
  return {};
}

// The next service not listed moves up into the list (its flows have
// reverse entries, which still serve); none listed ever moves out.
Status Dataplane::EndpointServices::release(const tg_backend_endpoint& key, const tg_endpoint_service& service) {
  auto it = holders_.find(key);
  if (it == holders_.end()) return {};
  std::vector<tg_endpoint_service> services = it->second;
  auto gone = std::find_if(services.begin(), services.end(), [&](const auto& s) { return same_service(s, service); });
  if (gone == services.end()) return {};
  const bool was_listed = gone - services.begin() < TG_ENDPOINT_SERVICES;
  services.erase(gone);
  if (was_listed)
    if (auto status = write(key, services); !status) return status;
  if (services.empty())
    holders_.erase(it);
  else
    it->second = std::move(services);
  return {};
}

// The services the kernel lists stay listed, in their places: their flows
// have no reverse entries.
Status Dataplane::EndpointServices::adopt(Holders holders) {
  auto keys = all_keys<tg_backend_endpoint>(map_);
  if (!keys) return keys.error();
  for (const auto& stale : *keys)
    if (!holders.contains(stale))
      if (auto status = remove(map_, &stale); !status) return status;
  for (auto& [key, services] : holders) {
    tg_endpoint_services pinned{};
    auto found = map_.lookup(key, pinned);
    if (!found) return found.error();
    std::vector<tg_endpoint_service> order;
    for (uint32_t i = 0; *found && i < std::min<uint32_t>(pinned.count, TG_ENDPOINT_SERVICES); ++i) {
      auto it = std::find_if(services.begin(), services.end(),
                             [&](const auto& s) { return same_service(s, pinned.services[i]); });
      if (it == services.end()) continue;
      order.push_back(*it);
      services.erase(it);
    }
    order.insert(order.end(), services.begin(), services.end());
    services = std::move(order);
    if (auto status = write(key, services); !status) return status;
  }
  holders_ = std::move(holders);
  return {};
}

tg_vip_address Dataplane::vip_key(const IpAddress& address) {
  tg_vip_address key{};
  address.to_words(key.addr);
  key.family = static_cast<uint8_t>(address.family);
  return key;
}

tg_backend_endpoint Dataplane::endpoint_key(const ServiceSpec& service, const Endpoint& backend) {
  tg_backend_endpoint key{};
  backend.address.to_words(key.addr);
  key.port = htons(backend.port);
  key.family = static_cast<uint8_t>(backend.address.family);
  key.protocol = static_cast<uint8_t>(service.address.protocol);
  return key;
}

tg_endpoint_service Dataplane::endpoint_service(const ServiceSpec& service) {
  tg_endpoint_service value{};
  service.address.endpoint.address.to_words(value.addr);
  value.port = htons(service.address.endpoint.port);
  return value;
}

Dataplane::Dataplane(const DataPathMaps& maps) : maps_(maps) {
  config_.abi_version = TG_ABI_VERSION;
  set_timeouts_fields(config_, FlowTimeouts{});
  set_event_fields(config_, EventSettings{});
}

namespace {

// Reads a whole array map (an adopted Maglev table).
Result<std::vector<uint32_t>> read_table(int fd, uint32_t size) {
  std::vector<uint32_t> keys(size), values(size);
  uint32_t read = 0, batch = 0;
  while (read < size) {
    uint32_t count = size - read;
    int err = bpf_map_lookup_batch(fd, read ? &batch : nullptr, &batch, keys.data() + read, values.data() + read,
                                   &count, nullptr);
    read += count;
    if (err && errno == ENOENT) break;
    if (err) return map_error("tg_maglev_table", "batch lookup", errno);
  }
  if (read != size) return make_error("map batch lookup read {} of {} entries [map = tg_maglev_table]", read, size);
  return values;
}

}  // namespace

Status Dataplane::adopt() {
  if (!services_.empty()) return make_error("adopt: the agent already holds services");
  auto by_id = adopt_services();
  if (!by_id) return by_id.error();
  if (auto status = adopt_backends(*by_id); !status) return status;
  if (auto status = adopt_tables(*by_id); !status) return status;
  if (auto status = adopt_policy(*by_id); !status) return status;
  return adopt_addresses();
}

Result<Dataplane::ServiceIds> Dataplane::adopt_services() {
  ServiceIds by_id;
  std::vector<tg_service_key> stale_keys;
  auto walked =
      walk_entries<tg_service_key, tg_service>(maps_.services, [&](const tg_service_key& key, const tg_service& value) {
        auto address = ServiceAddress::from_key(key);
        if (!address || value.service_id >= TG_MAX_SERVICES || by_id.contains(value.service_id) ||
            !is_prime(value.maglev_size)) {
          stale_keys.push_back(key);
          return;
        }
        ServiceState state;
        state.id = value.service_id;
        state.spec.address = *address;
        state.spec.maglev_size = value.maglev_size;
        // An unknown scheduler is read as Maglev: the agent's spec rewrites it.
        const auto scheduler = static_cast<Scheduler>(value.algorithm);
        if (std::find(std::begin(kSchedulers), std::end(kSchedulers), scheduler) != std::end(kSchedulers))
          state.spec.scheduler = scheduler;
        const unsigned address_bits = address->endpoint.address.family == Family::ipv4 ? 32 : 128;
        if (state.spec.scheduler == Scheduler::source_hash && value.source_prefix != address_bits)
          state.spec.source_prefix = value.source_prefix;
        state.address_counted = true;
        state.visible = true;
        state.reverse_entries = value.flags & TG_SERVICE_REVERSE_ENTRIES;
        state.listed_backends = value.listed_backends;
        service_ids_.take(state.id);
        by_id.emplace(state.id, *address);
        services_.emplace(*address, std::move(state));
      });
  if (!walked) return walked.error();
  for (const auto& stale : stale_keys)
    if (auto status = remove(maps_.services, &stale); !status) return status.error();
  return by_id;
}

// Every slot's generation, and the owner of each used one.
Status Dataplane::adopt_backends(const ServiceIds& by_id) {
  for (uint32_t index = TG_BACKEND_NONE + 1; index < TG_MAX_BACKENDS; ++index) {
    tg_backend value{};
    auto found = maps_.backends.lookup_bytes(&index, &value, fmt::format("index = {}", index));
    if (!found) return found.error();
    if (!*found) return maps_.backends.error("lookup", ENOENT, fmt::format("index = {}", index));
    generations_[index] = value.generation;
    if (value.state == TG_BACKEND_UNUSED) continue;
    backend_slots_.take(index);
    auto owner = by_id.find(value.service_id);
    ServiceState* service = owner == by_id.end() ? nullptr : &services_.at(owner->second);
    Endpoint endpoint{IpAddress::from_words(value.addr, static_cast<Family>(value.family)), ntohs(value.port)};
    const bool usable = service && value.state <= TG_BACKEND_DOWN && value.weight >= 1 && value.weight <= kMaxWeight &&
                        value.family == static_cast<uint8_t>(service->spec.address.endpoint.address.family) &&
                        !service->backend_indexes.contains(endpoint);
    if (!usable) {
      if (auto status = release_backend(index); !status) return status;
      continue;
    }
    service->spec.backends.push_back({endpoint, value.weight, static_cast<BackendState>(value.state)});
    service->backend_indexes.emplace(endpoint, index);
  }
  return {};
}

// Only the services' slots are read. On 6.1 every lookup in a map of maps
// from user space waits for an RCU grace period (maybe_wait_bpf_programs),
// so a walk of all TG_MAX_SERVICES slots took minutes. A table left in a
// slot no service owns is unreachable (the data path finds tables through
// tg_services) and is replaced when the slot's id is given out again.
Status Dataplane::adopt_tables(const ServiceIds& by_id) {
  for (const auto& [id, address] : by_id) {
    uint32_t table_id = 0;
    auto found = maps_.maglev.lookup(id, table_id);
    if (!found) return found.error();
    if (!*found) continue;  // no table
    ServiceState& service = services_.at(address);
    int fd = bpf_map_get_fd_by_id(table_id);
    if (fd < 0) return make_error("cannot open Maglev table {} of service {}: {}", table_id, id, errno_text());
    bpf_map_info info{};
    uint32_t length = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &length)) {
      close(fd);
      return make_error("cannot inspect Maglev table {}: {}", table_id, errno_text());
    }
    auto entries = read_table(fd, info.max_entries);
    if (!entries) {
      close(fd);
      return entries.error();
    }
    // A list that does not fit is read as none: the next change rewrites it.
    const uint64_t end = uint64_t{service.spec.maglev_size} + service.listed_backends;
    const uint32_t listed = end <= entries->size() ? service.listed_backends : 0;
    service.tables[0] = Table{fd, std::move(*entries), listed};
    service.active_table = 0;
  }
  return {};
}

// Each service's as the kernel holds it; what no service owns goes. The
// global settings stay as they are until the next change.
Status Dataplane::adopt_policy(const ServiceIds& by_id) {
  for (auto& [address, service] : services_) {
    auto policy = read_service_policy(maps_, service.id);
    if (!policy) return policy.error();
    service.spec.policy = std::move(*policy);
  }
  for (uint32_t id = 0; id < TG_MAX_SERVICES; ++id) {
    tg_service_policy value{};
    if (by_id.contains(id)) continue;
    auto found = maps_.service_policy.lookup(id, value);
    if (!found) return found.error();
    if (!*found || value.flags == 0) continue;
    if (auto status = clear_service_policy(maps_, id); !status) return status;
  }
  uint32_t zero = 0;
  tg_config pinned{};
  auto found = maps_.config.lookup(zero, pinned);
  if (!found) return found.error();
  if (*found && pinned.abi_version == TG_ABI_VERSION) config_ = pinned;
  return {};
}

// The references to service and backend addresses, rebuilt from the
// services.
Status Dataplane::adopt_addresses() {
  std::map<tg_vip_address, uint32_t, KeyLess> vips;
  EndpointServices::Holders endpoints;
  for (const auto& [address, service] : services_) {
    ++vips[vip_key(address.endpoint.address)];
    for (const auto& [backend, index] : service.backend_indexes)
      endpoints[endpoint_key(service.spec, backend)].push_back(endpoint_service(service.spec));
  }
  if (auto status = vip_filter_.adopt(vips); !status) return status;
  if (auto status = vip_addresses_.adopt(std::move(vips)); !status) return status;
  return backend_endpoints_.adopt(std::move(endpoints));
}

std::vector<ServiceSpec> Dataplane::service_specs() const {
  std::vector<ServiceSpec> specs;
  for (const auto& [address, service] : services_) specs.push_back(service.spec);
  return specs;
}

Dataplane::~Dataplane() {
  // The outer map keeps its own references to the tables in use.
  for (auto& [address, service] : services_)
    for (auto& table : service.tables)
      if (table.fd >= 0) close(table.fd);
}

Status Dataplane::write_config() {
  uint32_t zero = 0;
  return update(maps_.config, &zero, &config_);
}

Status Dataplane::set_timeouts(const FlowTimeouts& timeouts) {
  set_timeouts_fields(config_, timeouts);
  return write_config();
}

Status Dataplane::set_global_policy(const AccessLists& access, const EventSettings& events) {
  if (auto status = add_acl_entries(maps_, TG_SCOPE_GLOBAL, access); !status) return status;
  config_.flags = (access.allow.empty() ? 0 : TG_POLICY_ALLOW_LIST) | (access.deny.empty() ? 0 : TG_POLICY_DENY_LIST);
  set_event_fields(config_, events);
  if (auto status = write_config(); !status) return status;
  return remove_stale_acl_entries(maps_, TG_SCOPE_GLOBAL, access);
}

std::vector<ServiceAddress> Dataplane::service_addresses() const {
  std::vector<ServiceAddress> addresses;
  for (const auto& [address, service] : services_) addresses.push_back(address);
  return addresses;
}

const ServiceSpec* Dataplane::service_spec(const ServiceAddress& address) const {
  auto it = services_.find(address);
  return it == services_.end() ? nullptr : &it->second.spec;
}

std::optional<ServiceSlots> Dataplane::slots(const ServiceAddress& address) const {
  auto it = services_.find(address);
  if (it == services_.end()) return std::nullopt;
  const ServiceState& service = it->second;
  const uint64_t digest = service.active_table < 0 ? 0 : service.tables[service.active_table].digest;
  return ServiceSlots{service.id, service.backend_indexes, digest};
}

std::optional<uint32_t> Dataplane::service_id(const ServiceAddress& address) const {
  auto it = services_.find(address);
  if (it == services_.end()) return std::nullopt;
  return it->second.id;
}

std::optional<uint32_t> Dataplane::backend_index(const ServiceAddress& address, const Endpoint& backend) const {
  auto it = services_.find(address);
  if (it == services_.end()) return std::nullopt;
  auto found = it->second.backend_indexes.find(backend);
  if (found == it->second.backend_indexes.end()) return std::nullopt;
  return found->second;
}

const std::vector<uint32_t>* Dataplane::active_table(const ServiceAddress& address) const {
  auto it = services_.find(address);
  if (it == services_.end() || it->second.active_table < 0) return nullptr;
  return &it->second.tables[it->second.active_table].entries;
}

Status Dataplane::write_backend(const ServiceState& service, uint32_t index, const BackendSpec& backend) {
  tg_backend value{};
  backend.endpoint.address.to_words(value.addr);
  value.port = htons(backend.endpoint.port);
  value.family = static_cast<uint8_t>(backend.endpoint.address.family);
  value.state = static_cast<uint8_t>(backend.state);
  value.service_id = service.id;
  value.generation = generations_[index];
  value.weight = backend.weight;
  return write_backend_value(index, value);
}

Status Dataplane::write_backend_value(uint32_t index, const tg_backend& value) {
  // A slot the kernel holds as it is now is not written again: a change to
  // one backend of a large service writes that backend's slot only.
  auto written = written_backends_.find(index);
  if (written != written_backends_.end() && std::memcmp(&written->second, &value, sizeof(value)) == 0) return {};
  written_backends_.erase(index);
  ++last_write_.backend_entries;
  if (auto status = update(maps_.backends, &index, &value); !status) return status;
  written_backends_[index] = value;
  return {};
}

Status Dataplane::release_backend(uint32_t index) {
  // Keep the generation: flows that still name this slot see it unused.
  tg_backend value{};
  value.generation = generations_[index];
  value.service_id = TG_SERVICE_NONE;
  if (auto status = write_backend_value(index, value); !status) return status;
  backend_slots_.release(index);
  return {};
}

Status Dataplane::remove_backend(ServiceState& service, BackendIterator& backend) {
  if (auto status = release_backend(backend->second); !status) return status;
  const Endpoint endpoint = backend->first;
  backend = service.backend_indexes.erase(backend);
  return backend_endpoints_.release(endpoint_key(service.spec, endpoint), endpoint_service(service.spec));
}

Dataplane::Table Dataplane::build_table(const ServiceState& service, const std::vector<uint32_t>& indexes) const {
  std::vector<MaglevBackend> candidates;
  std::vector<uint32_t> table_indexes;
  std::map<Endpoint, uint32_t> listed;
  for (size_t i = 0; i < service.spec.backends.size(); ++i) {
    const BackendSpec& backend = service.spec.backends[i];
    if (backend.state != BackendState::up) continue;
    candidates.push_back({maglev_key(backend.endpoint), backend.weight});
    table_indexes.push_back(indexes[i]);
    listed.emplace(backend.endpoint, indexes[i]);
  }
  Table built;
  const Scheduler scheduler = service.spec.scheduler;
  const bool sequence = scheduler == Scheduler::round_robin || scheduler == Scheduler::random ||
                        scheduler == Scheduler::least_connections || scheduler == Scheduler::least_requests;
  built.entries = sequence ? build_weighted_sequence(candidates, service.spec.maglev_size)
                           : build_maglev_table(candidates, service.spec.maglev_size);
  built.digest = maglev_digest(candidates, built.entries);
  for (auto& entry : built.entries) entry = entry == kMaglevEmpty ? TG_BACKEND_NONE : table_indexes[entry];
  for (const auto& [endpoint, index] : listed) built.entries.push_back(index);
  built.listed = static_cast<uint32_t>(listed.size());
  // Room for the list to grow to the next power of two (at least 8): a
  // backend added or removed changes a few entries, not the array's size
  // (which would mean a new array, written whole).
  const size_t room = std::bit_ceil(std::max<size_t>(listed.size(), 8));
  built.entries.resize(built.entries.size() + room - listed.size(), TG_BACKEND_NONE);
  return built;
}

Status Dataplane::install_table(ServiceState& service, Table built, bool defer_switch) {
  std::vector<uint32_t>& entries = built.entries;
  const uint32_t size = static_cast<uint32_t>(entries.size());
  // The table in place is this one already (a change that moves no entry:
  // a weight change that rounds the same, a backend added down): no swap,
  // and so no RCU grace period to wait for.
  if (service.active_table >= 0 && service.tables[service.active_table].entries == entries) {
    service.tables[service.active_table].digest = built.digest;  // an adopted table's is not known
    return {};
  }
  int standby_index = service.active_table == 0 ? 1 : 0;
  Table& standby = service.tables[standby_index];

  if (standby.fd >= 0 && standby.entries.size() != size) {
    close(standby.fd);
    standby = Table{};
  }
  if (standby.fd < 0) {
    LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = BPF_F_INNER_MAP);
    standby.fd =
        bpf_map_create(BPF_MAP_TYPE_ARRAY, "tg_maglev_table", sizeof(uint32_t), sizeof(uint32_t), size, &options);
    if (standby.fd < 0) return map_error("tg_maglev_table", "create", errno, fmt::format("size = {}", size));
    standby.entries.assign(size, TG_BACKEND_NONE);  // a new array map is zeroed
  }

  // Only the entries where the standby differs from the new table.
  std::vector<uint32_t> keys;
  std::vector<uint32_t> values;
  for (uint32_t slot = 0; slot < size; ++slot) {
    if (standby.entries[slot] == entries[slot]) continue;
    keys.push_back(slot);
    values.push_back(entries[slot]);
  }
  if (!keys.empty()) {
    uint32_t count = static_cast<uint32_t>(keys.size());
    if (bpf_map_update_batch(standby.fd, keys.data(), values.data(), &count, nullptr)) {
      // Part of it may be written: make the next diff rewrite every entry.
      const int error_number = errno;
      standby.entries.assign(size, kUnknownEntry);
      return map_error("tg_maglev_table", "batch update", error_number, fmt::format("entries = {}", keys.size()));
    }
  }
  last_write_.table_entries += keys.size();
  standby.entries = std::move(entries);
  standby.listed = built.listed;
  standby.digest = built.digest;
  if (defer_switch) return {};  // switch_pending_tables() puts it in place

  // The switch. For a map-in-map update the kernel waits for an RCU grace
  // period before returning, so no program still reads the table this
  // replaces by the time we next write into it as the standby.
  int table_fd = standby.fd;
  const auto switch_started = std::chrono::steady_clock::now();
  if (auto status = update(maps_.maglev, &service.id, &table_fd); !status) return status;
  last_write_.table_switch += std::chrono::steady_clock::now() - switch_started;
  service.active_table = standby_index;
  return {};
}

uint32_t Dataplane::active_listed(const ServiceState& service) {
  return service.active_table < 0 ? 0 : service.tables[service.active_table].listed;
}

bool Dataplane::needs_reverse_entries(const ServiceState& service) const {
  if (service.spec.address.endpoint.port == 0) return true;
  return std::any_of(service.backend_indexes.begin(), service.backend_indexes.end(), [&](const auto& backend) {
    return !backend_endpoints_.lists(endpoint_key(service.spec, backend.first), endpoint_service(service.spec));
  });
}

Status Dataplane::write_service_value(ServiceState& service, uint32_t maglev_size) {
  tg_service value{};
  value.service_id = service.id;
  value.maglev_size = maglev_size;
  value.algorithm = static_cast<uint8_t>(service.spec.scheduler);
  value.forward_mode = TG_FORWARD_NAT;
  const uint8_t address_bits = service.spec.address.endpoint.address.family == Family::ipv4 ? 32 : 128;
  value.source_prefix = service.spec.source_prefix.value_or(address_bits);
  const bool reverse_entries = needs_reverse_entries(service);
  if (reverse_entries) value.flags = TG_SERVICE_REVERSE_ENTRIES;
  // The table in place's list. Written before a shrinking table's switch,
  // it is read at the new size's offset: entries of that same service, or
  // past the array's end (the data path skips both).
  value.listed_backends = active_listed(service);
  tg_service_key key = service.spec.address.to_key();
  if (auto status = update(maps_.services, &key, &value); !status) return status;
  service.reverse_entries = reverse_entries;
  service.listed_backends = value.listed_backends;
  return {};
}

Status Dataplane::apply_service(const ServiceSpec& spec) {
  if (auto status = validate_service(spec); !status) return status;
  last_write_ = {};

  auto existing = services_.find(spec.address);
  const bool is_new = existing == services_.end();
  // The kernel holds this spec already: nothing to write, no table to swap.
  if (!is_new && existing->second.converged && existing->second.spec == spec) return {};

  if (auto status = check_service_capacity(spec); !status) return status;

  if (is_new) {
    ServiceState fresh;
    fresh.id = service_ids_.allocate();
    const uint64_t cursor = 0;  // round robin starts at its sequence's first entry
    if (auto status = reset_counters(maps_.service_stats, fresh.id); !status) {
      service_ids_.release(fresh.id);
      return status;
    }
    if (auto status = update(maps_.service_cursors, &fresh.id, &cursor); !status) {
      service_ids_.release(fresh.id);
      return status;
    }
    existing = services_.emplace(spec.address, std::move(fresh)).first;
  }
  // From here on the kernel changes: the state is edited in place (its
  // tables are not copied), and whatever happens it keeps what we know of
  // the kernel (ids, slots, table fds and contents), so that a retry
  // converges and nothing is leaked or closed twice.
  ServiceState& service = existing->second;
  std::optional<ServiceSpec> previous;
  if (is_new)
    service.spec = spec;
  else
    previous = std::exchange(service.spec, spec);
  // A new service applied among others (apply_services) stops before its
  // table is switched in; the switches happen together.
  const bool defer = is_new && deferring_;
  Status status = apply_steps(service, previous ? &*previous : nullptr, defer);
  service.converged = status.ok() && !defer;
  if (status && defer) pending_.push_back(spec.address);
  return status;
}

Status Dataplane::make_visible(ServiceState& service) {
  if (!service.address_counted) {
    const tg_vip_address vip = vip_key(service.spec.address.endpoint.address);
    if (auto status = vip_filter_.hold(vip); !status) return status;
    if (auto status = vip_addresses_.hold(vip); !status) {
      (void)vip_filter_.release(vip);  // a bit left set only costs an exact lookup
      return status;
    }
    service.address_counted = true;
  }
  if (auto status = write_service_value(service, service.spec.maglev_size); !status) return status;
  service.visible = true;
  return {};
}

Status Dataplane::apply_services(const std::vector<ServiceSpec>& specs) {
  pending_.clear();
  deferring_ = true;
  Status status;
  for (const auto& spec : specs) {
    status = apply_service(spec);
    if (!status) {
      status = with_context(status.error(), fmt::format("service {}", spec.address.to_string()));
      break;
    }
  }
  deferring_ = false;
  // Even after a failure: what was prepared is put in place, so that the
  // data path holds whole services only.
  Status finished = finish_pending();
  return status ? finished : status;
}

Status Dataplane::finish_pending() {
  if (pending_.empty()) return {};
  // One write of the outer map for all the new tables: one RCU grace
  // period (none on kernels before 6.7, which do not wait in a batch)
  // instead of one per service. A new service's slot held no table that
  // a program could still read, so nothing waits on it.
  std::vector<uint32_t> ids;
  std::vector<int> fds;
  for (const auto& address : pending_) {
    ServiceState& service = services_.at(address);
    ids.push_back(service.id);
    fds.push_back(service.tables[service.active_table == 0 ? 1 : 0].fd);
  }
  uint32_t count = static_cast<uint32_t>(ids.size());
  // Batches of a map of maps may be refused: one by one then.
  const bool batched = bpf_map_update_batch(maps_.maglev.fd(), ids.data(), fds.data(), &count, nullptr) == 0;
  std::vector<ServiceAddress> pending = std::move(pending_);
  pending_.clear();
  for (size_t i = 0; i < pending.size(); ++i) {
    // A failure leaves the rest unconverged: applying them again finishes them.
    if (!batched)
      if (auto status = update(maps_.maglev, &ids[i], &fds[i]); !status) return status;
    ServiceState& service = services_.at(pending[i]);
    service.active_table = service.active_table == 0 ? 1 : 0;
    if (auto status = make_visible(service); !status) return status;
    service.converged = true;
  }
  return {};
}

Status Dataplane::apply_steps(ServiceState& next, const ServiceSpec* previous, bool defer_switch) {
  const ServiceSpec& spec = next.spec;
  const uint32_t old_size = previous ? previous->maglev_size : 0;

  // 0. Policy, in force before the service is visible to packets.
  if (!previous || previous->policy != spec.policy) {
    if (auto status = write_service_policy(maps_, next.id, spec.policy, !previous); !status) return status;
  }

  // 1. Backend slots before any table names them. A backend leaving UP is
  // written after the switch: until then the old table still sends new
  // flows to it, and it must accept them.
  const std::vector<const BackendSpec*> was = match_backends(spec, previous);
  std::vector<size_t> leaving_up;  // positions in spec.backends
  std::vector<uint32_t> indexes;   // slot of each backend of spec, in its order
  indexes.reserve(spec.backends.size());
  for (size_t i = 0; i < spec.backends.size(); ++i) {
    const BackendSpec& backend = spec.backends[i];
    auto known = next.backend_indexes.find(backend.endpoint);
    if (known == next.backend_indexes.end()) {
      // Its endpoint is known to the reply path before any flow goes to it.
      if (auto status = backend_endpoints_.hold(endpoint_key(spec, backend.endpoint), endpoint_service(spec)); !status)
        return status;
      known = next.backend_indexes.emplace(backend.endpoint, backend_slots_.allocate()).first;
      ++generations_[known->second];
      if (auto status = reset_counters(maps_.backend_stats, known->second); !status) return status;
      if (auto status = reset_health(maps_.backend_health, known->second); !status) return status;
      // Least connections' and least requests' counts start afresh with the slot.
      const int64_t no_connections = 0;
      if (auto status = update(maps_.backend_active, &known->second, &no_connections); !status) return status;
      const tg_recent_flows no_flows{};
      if (auto status = update(maps_.backend_recent, &known->second, &no_flows); !status) return status;
    }
    indexes.push_back(known->second);
    if (was[i] && was[i]->state == BackendState::up && backend.state != BackendState::up) {
      leaving_up.push_back(i);
      continue;
    }
    if (auto status = write_backend(next, known->second, backend); !status) return status;
  }
  // A backend at an endpoint that lists the service not: its flows keep
  // reverse entries from the first one on (the table in place still has the
  // old size).
  if (next.visible && !next.reverse_entries && needs_reverse_entries(next)) {
    if (auto status = write_service_value(next, old_size); !status) return status;
  }

  // 2. The table, switched in whole. When the size changes, the service
  // value that tells the size must never exceed the table in place.
  const bool shrinking = previous && spec.maglev_size < old_size;
  if (shrinking) {
    if (auto status = write_service_value(next, spec.maglev_size); !status) return status;
  }
  if (auto status = install_table(next, build_table(next, indexes), defer_switch); !status) return status;
  if (defer_switch) return {};  // a new service: finish_pending() does the rest
  for (size_t i : leaving_up)
    if (auto status = write_backend(next, indexes[i], spec.backends[i]); !status) return status;

  // 3. The service itself, visible to packets last.
  if (!next.visible) {
    if (auto status = make_visible(next); !status) return status;
  } else if (!shrinking &&
             (spec.maglev_size != old_size ||
              (previous && (spec.scheduler != previous->scheduler || spec.source_prefix != previous->source_prefix)) ||
              next.reverse_entries != needs_reverse_entries(next) || next.listed_backends != active_listed(next))) {
    if (auto status = write_service_value(next, spec.maglev_size); !status) return status;
  }

  // 4. Slots of removed backends: no table names them any more. Every
  // backend of spec has a slot, so there are some only if slots outnumber
  // the backends.
  if (next.backend_indexes.size() == spec.backends.size()) return {};
  std::vector<Endpoint> wanted;
  wanted.reserve(spec.backends.size());
  for (const auto& backend : spec.backends) wanted.push_back(backend.endpoint);
  std::sort(wanted.begin(), wanted.end());
  for (auto it = next.backend_indexes.begin(); it != next.backend_indexes.end();) {
    if (std::binary_search(wanted.begin(), wanted.end(), it->first)) {
      ++it;
      continue;
    }
    if (auto status = remove_backend(next, it); !status) return status;
  }
  return {};
}

Status Dataplane::check_service_capacity(const ServiceSpec& spec) const {
  auto existing = services_.find(spec.address);
  const bool is_new = existing == services_.end();
  size_t new_backends = 0;
  for (const auto& backend : spec.backends)
    if (is_new || !existing->second.backend_indexes.contains(backend.endpoint)) ++new_backends;
  if (is_new && service_ids_.available() == 0)
    return make_error(ErrorKind::capacity, "service: the data path holds {} services already", TG_MAX_SERVICES);
  if (new_backends > backend_slots_.available())
    return make_error(ErrorKind::capacity, "backends: {} new backends, but only {} backend slots are free",
                      new_backends, backend_slots_.available());
  return {};
}

Status Dataplane::check_capacity(const std::vector<ServiceSpec>& services) const {
  if (services.size() > TG_MAX_SERVICES)
    return make_error(ErrorKind::capacity, "services: {} services, the data path holds at most {}", services.size(),
                      TG_MAX_SERVICES);
  size_t slots = 0;
  for (const auto& spec : services) {
    slots += spec.backends.size();
    auto existing = services_.find(spec.address);
    if (existing == services_.end()) continue;
    std::set<Endpoint> wanted;
    for (const auto& backend : spec.backends) wanted.insert(backend.endpoint);
    for (const auto& [endpoint, index] : existing->second.backend_indexes)
      if (!wanted.contains(endpoint)) ++slots;
  }
  const size_t capacity = TG_MAX_BACKENDS - 1;  // slot 0 is TG_BACKEND_NONE
  if (slots > capacity)
    return make_error(ErrorKind::capacity, "backends: the change needs {} backend slots at once, the data path has {}",
                      slots, capacity);
  return {};
}

Status Dataplane::remove_service(const ServiceAddress& address) {
  auto it = services_.find(address);
  if (it == services_.end()) return make_error(ErrorKind::not_found, "service {} does not exist", address.to_string());
  ServiceState& service = it->second;
  last_write_ = {};

  tg_service_key key = address.to_key();
  if (auto status = remove(maps_.services, &key); !status) return status;
  if (service.address_counted) {
    const tg_vip_address vip = vip_key(address.endpoint.address);
    if (auto status = vip_addresses_.release(vip); !status) return status;
    service.address_counted = false;
    // Not a reason to stop half way: a bit left set only costs an exact lookup.
    (void)vip_filter_.release(vip);
  }
  if (auto status = remove(maps_.maglev, &service.id); !status) return status;
  for (auto& table : service.tables)
    if (table.fd >= 0) close(table.fd);
  service.tables = {};
  for (auto backend = service.backend_indexes.begin(); backend != service.backend_indexes.end();)
    if (auto status = remove_backend(service, backend); !status) return status;
  if (auto status = clear_service_policy(maps_, service.id); !status) return status;
  service_ids_.release(service.id);
  services_.erase(it);
  return {};
}

}  // namespace tollgate
