// Counting and emptying a BPF map from the tests and bench/, whatever its
// key type, through the agent's own walks (userspace/datapath/flow_walk.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "flow_walk.h"
#include "map_handle.h"

namespace tollgate::test {

// How many entries the map holds; SIZE_MAX when it cannot be walked (no
// count of a test equals it).
inline size_t map_entries(const MapHandle& map) {
  auto count = count_entries(map);
  return count ? *count : SIZE_MAX;
}

// Deletes every entry; false when the map cannot be walked or emptied.
inline bool clear_map(const MapHandle& map) {
  auto layout = map_layout(map);
  if (!layout) return false;
  std::vector<uint8_t> keys;
  auto walked = walk_map(map, *layout, [&](const void* key, const void*) {
    const auto* bytes = static_cast<const uint8_t*>(key);
    keys.insert(keys.end(), bytes, bytes + layout->key_size);
    return Status{};
  });
  return walked && delete_keys(map, keys.data(), layout->key_size, *walked);
}

}  // namespace tollgate::test
