// Walking a BPF hash map from userspace, whatever its key type (keys of at
// most 64 bytes): shared by the bpf tests and bench/.
#pragma once

#include <bpf/bpf.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "map_handle.h"

namespace tollgate::test {

// How many entries the map holds.
inline size_t map_entries(const MapHandle& map) {
  size_t count = 0;
  std::array<uint8_t, 64> key{}, next{};
  const void* previous = nullptr;
  while (bpf_map_get_next_key(map.fd(), previous, next.data()) == 0) {
    ++count;
    key = next;
    previous = key.data();
  }
  return count;
}

// Deletes every entry.
inline void clear_map(const MapHandle& map) {
  std::array<uint8_t, 64> key{};
  while (bpf_map_get_next_key(map.fd(), nullptr, key.data()) == 0) bpf_map_delete_elem(map.fd(), key.data());
}

}  // namespace tollgate::test
