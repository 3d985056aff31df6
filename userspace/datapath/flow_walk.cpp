#include "flow_walk.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>

namespace tollgate {
namespace {

// The kernel's "no such operation for this map type" (not in user space's errno.h).
constexpr int kKernelNotSupported = 524;  // ENOTSUPP
// A chunk grows (doubling) only when one hash bucket holds more than it.
constexpr uint32_t kMaxChunk = 1u << 20;

bool batch_refused(int error_number) {
  return error_number == EINVAL || error_number == kKernelNotSupported || error_number == EOPNOTSUPP;
}

bool is_per_cpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY;
}

// How many entries a walk may visit before it is taken for endless.
size_t visit_bound(const MapLayout& layout, uint32_t chunk) { return 2 * size_t{layout.max_entries} + chunk; }

// Batched. `refused`: the kernel has no batches for this map (nothing visited).
Result<size_t> walk_batched(const MapHandle& map, const MapLayout& layout, const EntryVisitor& visit, uint32_t chunk,
                            bool& refused) {
  refused = false;
  chunk = std::max(chunk, 1u);
  std::vector<uint8_t> keys(size_t{chunk} * layout.key_size), values(size_t{chunk} * layout.value_size);
  // Where the next batch starts: for a hash map a bucket number (u32), for
  // an array a key; written by the kernel, given back as it is.
  std::vector<uint8_t> position(std::max<size_t>(layout.key_size, 8));
  const size_t bound = visit_bound(layout, chunk);
  size_t visited = 0;
  bool first = true;
  // Each call returns at least one entry, or ends the walk, or doubles
  // the chunk; the bounds hold even if the kernel did otherwise.
  for (size_t calls = 0;; ++calls) {
    if (calls > bound) return map.error("batch lookup", EOVERFLOW, fmt::format("no end after {} calls", calls));
    uint32_t count = chunk;
    const int result = bpf_map_lookup_batch(map.fd(), first ? nullptr : position.data(), position.data(), keys.data(),
                                            values.data(), &count, nullptr);
    const int error_number = result ? errno : 0;
    if (result && first && batch_refused(error_number)) {
      refused = true;
      return size_t{0};
    }
    if (result && error_number == ENOSPC && count == 0) {
      // One bucket holds more than a chunk: read it again with a larger one.
      if (chunk >= kMaxChunk) return map.error("batch lookup", error_number, fmt::format("chunk = {}", chunk));
      chunk *= 2;
      keys.resize(size_t{chunk} * layout.key_size);
      values.resize(size_t{chunk} * layout.value_size);
      first = false;  // the kernel wrote where to start again
      continue;
    }
    if (result && error_number != ENOENT) return map.error("batch lookup", error_number);
    // ENOENT: the end of the map; this last chunk's entries are valid.
    for (uint32_t i = 0; i < count; ++i)
      if (auto status = visit(keys.data() + size_t{i} * layout.key_size, values.data() + size_t{i} * layout.value_size);
          !status)
        return status.error();
    visited += count;
    if (result) return visited;
    if (visited > bound)
      return map.error("batch lookup", EOVERFLOW, fmt::format("walk past {} entries, the map changes under it", bound));
    first = false;
  }
}

// Key by key: every key first, then each one's value (one gone meanwhile
// is skipped). When the key it stands on is deleted, bpf_map_get_next_key
// starts again at the first key: bounded.
Result<size_t> walk_key_by_key(const MapHandle& map, const MapLayout& layout, const EntryVisitor& visit,
                               uint32_t chunk) {
  const size_t bound = visit_bound(layout, chunk);
  std::vector<uint8_t> keys;
  std::vector<uint8_t> next(layout.key_size);
  size_t count = 0;
  for (;;) {
    const void* previous = count == 0 ? nullptr : keys.data() + (count - 1) * layout.key_size;
    if (bpf_map_get_next_key(map.fd(), previous, next.data()) != 0) {
      if (errno == ENOENT) break;
      return map.error("get next key", errno);
    }
    if (count >= bound)
      return map.error("get next key", EOVERFLOW, fmt::format("walk past {} entries, the map changes under it", bound));
    keys.insert(keys.end(), next.begin(), next.end());
    ++count;
  }
  std::vector<uint8_t> value(layout.value_size);
  size_t visited = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* key = keys.data() + i * layout.key_size;
    auto found = map.lookup_bytes(key, value.data());
    if (!found) return found.error();
    if (!*found) continue;  // deleted meanwhile
    if (auto status = visit(key, value.data()); !status) return status.error();
    ++visited;
  }
  return visited;
}

}  // namespace

Result<MapLayout> map_layout(const MapHandle& map) {
  bpf_map_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(map.fd(), &info, &length) != 0) return map.error("info", errno);
  MapLayout layout{info.type, info.key_size, info.value_size, info.max_entries};
  if (is_per_cpu(info.type)) {
    const int cpus = libbpf_num_possible_cpus();
    if (cpus < 0) return map.error("possible CPUs", -cpus);
    layout.value_size = ((info.value_size + 7) / 8 * 8) * static_cast<uint32_t>(cpus);
  }
  return layout;
}

Result<size_t> walk_map(const MapHandle& map, const MapLayout& layout, const EntryVisitor& visit,
                        const WalkOptions& options) {
  if (options.method != WalkMethod::key_by_key) {
    bool refused = false;
    auto visited = walk_batched(map, layout, visit, options.chunk, refused);
    if (!refused) return visited;
    if (options.method == WalkMethod::batched)
      return map.error("batch lookup", kKernelNotSupported, "no batch operations for this map type");
  }
  return walk_key_by_key(map, layout, visit, options.chunk);
}

Result<size_t> delete_keys(const MapHandle& map, const void* keys, size_t key_size, size_t count,
                           const WalkOptions& options) {
  const auto* bytes = static_cast<const uint8_t*>(keys);
  const uint32_t chunk = std::max(options.chunk, 1u);
  bool batched = options.method != WalkMethod::key_by_key;
  size_t deleted = 0;
  // Each pass moves `next` on by at least one key.
  for (size_t next = 0; next < count;) {
    if (!batched) {
      auto removed = map.remove_bytes(bytes + next * key_size);
      if (!removed) return removed.error();
      deleted += *removed;
      ++next;
      continue;
    }
    uint32_t taken = static_cast<uint32_t>(std::min<size_t>(chunk, count - next));
    if (bpf_map_delete_batch(map.fd(), bytes + next * key_size, &taken, nullptr) == 0) {
      deleted += taken;
      next += taken;
      continue;
    }
    const int error_number = errno;
    if (batch_refused(error_number) && options.method == WalkMethod::automatic && next == 0 && deleted == 0) {
      batched = false;
      continue;
    }
    // The kernel deleted `taken` keys, then found the next one gone.
    if (error_number != ENOENT) return map.error("batch delete", error_number);
    deleted += taken;
    next += size_t{taken} + 1;
  }
  return deleted;
}

Result<size_t> count_entries(const MapHandle& map, const WalkOptions& options) {
  auto layout = map_layout(map);
  if (!layout) return layout.error();
  return walk_map(
      map, *layout, [](const void*, const void*) { return Status{}; }, options);
}

}  // namespace tollgate
