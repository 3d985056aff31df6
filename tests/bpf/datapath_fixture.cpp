#include "datapath_fixture.h"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "flow_walk.h"

namespace tollgate::test {

namespace {

Status empty_hash(const MapHandle& map, const MapLayout& layout) {
  std::vector<uint8_t> keys;
  auto walked = walk_map(map, layout, [&keys, &layout](const void* key, const void*) {
    const auto* bytes = static_cast<const uint8_t*>(key);
    keys.insert(keys.end(), bytes, bytes + layout.key_size);
    return Status{};
  });
  if (!walked) return walked.error();
  auto deleted = delete_keys(map, keys.data(), layout.key_size, *walked);
  if (!deleted) return deleted.error();
  return {};
}

// Zeroes every entry that is not: reading a chunk costs a tenth of writing it.
Status zero_array(const MapHandle& map, const MapLayout& layout) {
  constexpr uint32_t kChunk = 4096;
  std::vector<uint32_t> keys(kChunk);
  std::vector<uint8_t> values(size_t{layout.value_size} * kChunk);
  const std::vector<uint8_t> zeros(values.size());
  for (uint32_t first = 0; first < layout.max_entries; first += kChunk) {
    const uint32_t count = std::min(kChunk, layout.max_entries - first);
    for (uint32_t i = 0; i < count; ++i) keys[i] = first + i;
    uint32_t after = first - 1, next = 0, read = count;  // a batch starts after its in_batch key
    LIBBPF_OPTS(bpf_map_batch_opts, options);
    const bool batched = bpf_map_lookup_batch(map.fd(), first ? &after : nullptr, &next, keys.data(), values.data(),
                                              &read, &options) == 0 ||
                         (errno == ENOENT && read == count);
    if (batched && read == count &&
        std::equal(values.begin(), values.begin() + long{count} * layout.value_size, zeros.begin()))
      continue;
    for (uint32_t i = 0; i < count; ++i) keys[i] = first + i;
    uint32_t written = count;
    if (bpf_map_update_batch(map.fd(), keys.data(), zeros.data(), &written, &options) == 0) continue;
    for (uint32_t i = 0; i < count; ++i)
      if (auto status = map.update_bytes(&keys[i], zeros.data(), BPF_ANY); !status) return status;
  }
  return {};
}

// The outer entries set are those of the services (the Dataplane removes
// a service's table with it, and the tests only read them): deleting every
// index instead would be 16,384 system calls a test.
Status empty_tables(const DataPathMaps& maps) {
  std::vector<uint32_t> ids;
  auto walked = walk_entries<tg_service_key, tg_service>(
      maps.services, [&ids](const tg_service_key&, const tg_service& service) { ids.push_back(service.service_id); });
  if (!walked) return walked.error();
  for (uint32_t id : ids)
    if (auto removed = maps.maglev.remove_bytes(&id); !removed) return removed.error();
  return {};
}

Status drain_ring(const MapHandle& map) {
  ring_buffer* ring = ring_buffer__new(
      map.fd(), [](void*, void*, size_t) { return 0; }, nullptr, nullptr);
  if (!ring) return map.error("ring buffer", errno);
  const int consumed = ring_buffer__consume(ring);
  ring_buffer__free(ring);
  if (consumed < 0) return map.error("consume", -consumed);
  return {};
}

}  // namespace

Status reset_maps(const DataPathMaps& maps) {
  if (auto status = empty_tables(maps); !status) return status;
  for (const MapHandle& map : maps.all()) {
    auto layout = map_layout(map);
    if (!layout) return layout.error();
    Status status;
    switch (layout->type) {
      case BPF_MAP_TYPE_ARRAY:
      case BPF_MAP_TYPE_PERCPU_ARRAY: status = zero_array(map, *layout); break;
      case BPF_MAP_TYPE_ARRAY_OF_MAPS: break;  // empty_tables
      case BPF_MAP_TYPE_RINGBUF: status = drain_ring(map); break;
      default: status = empty_hash(map, *layout); break;
    }
    if (!status) return status;
  }
  return {};
}

Result<DataPath*> DataPathTest::load_datapath() {
  const LoadOptions options = load_options();
  if (options != LoadOptions{}) {
    auto loaded = DataPath::load(options);
    if (!loaded) return loaded.error();
    own_datapath_ = std::move(loaded).value();
    return own_datapath_.get();
  }
  // Loaded and verified once per process: under TCG a load is 15 s.
  static std::unique_ptr<DataPath> shared;
  if (!shared) {
    auto loaded = DataPath::load(options);
    if (!loaded) return loaded.error();
    shared = std::move(loaded).value();
  } else if (auto status = reset_maps(shared->maps()); !status) {
    return status.error();
  }
  return shared.get();
}

}  // namespace tollgate::test
