// Map keys and whole maps for the tests and bench/: the flow key of a test
// packet; counting and emptying a map whatever its key type, through the
// agent's own walks (userspace/datapath/flow_walk.h).
#pragma once

#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "flow_walk.h"
#include "map_handle.h"
#include "packet.h"
#include "tollgate_abi.h"

namespace tollgate::test {

// The tg_flows key of `packet`, as the data path makes it from the client's side.
inline tg_flow_key flow_key_of(const PacketSpec& packet) {
  tg_flow_key key{};
  inet_pton(packet.ipv6 ? AF_INET6 : AF_INET, packet.src.c_str(), key.src_addr);
  inet_pton(packet.ipv6 ? AF_INET6 : AF_INET, packet.dst.c_str(), key.dst_addr);
  key.src_port = htons(packet.src_port);
  key.dst_port = htons(packet.dst_port);
  key.protocol = packet.protocol;
  key.family = packet.ipv6 ? TG_FAMILY_IPV6 : TG_FAMILY_IPV4;
  return key;
}

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
