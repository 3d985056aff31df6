// Walks of the data path's hash maps, the flow tables above all (up to
// 327k entries each): bpf_map_lookup_batch / bpf_map_delete_batch in
// chunks of kWalkChunk entries, a few hundred system calls where a walk
// key by key (bpf_map_get_next_key, then a lookup) makes two per entry.
// Key by key where the kernel has no batch operations for the map's type.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "map_handle.h"
#include "result.h"

namespace tollgate {

inline constexpr uint32_t kWalkChunk = 4096;

enum class WalkMethod {
  automatic,   // batched, key by key where the kernel refuses batches for the map (EINVAL, ENOTSUPP)
  batched,     // batched only: a refusal is an error
  key_by_key,  // bpf_map_get_next_key + lookup, delete one by one
};

struct WalkOptions {
  WalkMethod method = WalkMethod::automatic;
  uint32_t chunk = kWalkChunk;  // entries per batch
};

// What the kernel says of a map.
struct MapLayout {
  uint32_t type = 0;
  uint32_t key_size = 0;
  uint32_t value_size = 0;  // as read from user space: per-CPU maps hold one per CPU, each rounded up to 8 bytes
  uint32_t max_entries = 0;
};
Result<MapLayout> map_layout(const MapHandle& map);

// One entry: its key and value, in the map's layout. An error stops the
// walk, and the walk returns it.
using EntryVisitor = std::function<Status(const void* key, const void* value)>;

// Calls `visit` once for each entry; returns how many it visited. An entry
// added or deleted during the walk (by the data path, or by `visit`
// itself) may be visited or not; the walk ends all the same: past twice
// the map's capacity in entries it is an error, not an endless loop.
// Batched, `visit` runs after each chunk is read; key by key, after every
// key is read (so that a deletion cannot restart the walk).
Result<size_t> walk_map(const MapHandle& map, const MapLayout& layout, const EntryVisitor& visit,
                        const WalkOptions& options = {});

// Deletes `count` keys of `key_size` bytes each; a key already gone is
// skipped. Returns how many it deleted.
Result<size_t> delete_keys(const MapHandle& map, const void* keys, size_t key_size, size_t count,
                           const WalkOptions& options = {});

// Entries in the map now.
Result<size_t> count_entries(const MapHandle& map, const WalkOptions& options = {});

// The typed forms: the map's key (and value) must be Key (and Value).
// `visit(key, value)` returns a Status or nothing.
template <class Key, class Value, class Visit>
Result<size_t> walk_entries(const MapHandle& map, Visit&& visit, const WalkOptions& options = {}) {
  auto layout = map_layout(map);
  if (!layout) return layout.error();
  if (layout->key_size != sizeof(Key) || layout->value_size != sizeof(Value))
    return make_error("map walk: key and value are {} and {} bytes, the map's {} and {} [map = {}]", sizeof(Key),
                      sizeof(Value), layout->key_size, layout->value_size, map.name());
  return walk_map(
      map, *layout,
      [&visit](const void* key_bytes, const void* value_bytes) {
        Key key;
        Value value;
        std::memcpy(&key, key_bytes, sizeof(key));
        std::memcpy(&value, value_bytes, sizeof(value));
        if constexpr (std::is_void_v<decltype(visit(key, value))>) {
          visit(key, value);
          return Status{};
        } else {
          return visit(key, value);
        }
      },
      options);
}

template <class Key>
Result<std::vector<Key>> all_keys(const MapHandle& map, const WalkOptions& options = {}) {
  auto layout = map_layout(map);
  if (!layout) return layout.error();
  if (layout->key_size != sizeof(Key))
    return make_error("map walk: key is {} bytes, the map's {} [map = {}]", sizeof(Key), layout->key_size, map.name());
  std::vector<Key> keys;
  auto walked = walk_map(
      map, *layout,
      [&keys](const void* key_bytes, const void*) {
        Key key;
        std::memcpy(&key, key_bytes, sizeof(key));
        keys.push_back(key);
        return Status{};
      },
      options);
  if (!walked) return walked.error();
  return keys;
}

template <class Key>
Result<size_t> delete_keys(const MapHandle& map, const std::vector<Key>& keys, const WalkOptions& options = {}) {
  return delete_keys(map, keys.data(), sizeof(Key), keys.size(), options);
}

}  // namespace tollgate
