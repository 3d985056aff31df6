// A BPF map as userspace holds it: its fd and its name, so that every error
// about it says which map.
#pragma once

#include <bpf/bpf.h>

#include <string>
#include <string_view>

#include "result.h"

namespace tollgate {

// An error of a call on a map: "map update failed: No space left on device
// [map = tg_flows]", kind kernel, errno kept. `detail` ("index = 3") goes in
// the brackets after the name.
Error map_error(std::string_view map_name, std::string_view what, int error_number, std::string_view detail = {});

// Does not own the fd: the DataPath (or whoever made the map) closes it.
class MapHandle {
 public:
  MapHandle() = default;
  MapHandle(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}

  int fd() const { return fd_; }
  const std::string& name() const { return name_; }

  // true: found, `value` filled; false: no such key. `value` is the map's
  // value (per-CPU maps: one per possible CPU, each rounded up to 8 bytes).
  Result<bool> lookup_bytes(const void* key, void* value, std::string_view detail = {}) const;
  Status update_bytes(const void* key, const void* value, uint64_t flags, std::string_view detail = {}) const;
  // true: deleted; false: there was no such key.
  Result<bool> remove_bytes(const void* key, std::string_view detail = {}) const;

  template <class Key, class Value>
  Result<bool> lookup(const Key& key, Value& value) const {
    return lookup_bytes(&key, &value);
  }
  template <class Key, class Value>
  Status update(const Key& key, const Value& value, uint64_t flags = BPF_ANY) const {
    return update_bytes(&key, &value, flags);
  }
  template <class Key>
  Result<bool> remove(const Key& key) const {
    return remove_bytes(&key);
  }

  // An error of `what` ("update", "batch lookup") on this map.
  Error error(std::string_view what, int error_number, std::string_view detail = {}) const {
    return map_error(name_, what, error_number, detail);
  }

 private:
  int fd_ = -1;
  std::string name_;
};

}  // namespace tollgate
