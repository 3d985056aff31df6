#include "map_handle.h"

#include <cerrno>
#include <cstring>

namespace tollgate {

Error map_error(std::string_view map_name, std::string_view what, int error_number, std::string_view detail) {
  return errno_error(ErrorKind::kernel, error_number, "map {} failed: {} [map = {}{}{}]", what,
                     std::strerror(error_number), map_name, detail.empty() ? "" : ", ", detail);
}

Result<bool> MapHandle::lookup_bytes(const void* key, void* value, std::string_view detail) const {
  if (bpf_map_lookup_elem(fd_, key, value) == 0) return true;
  if (errno == ENOENT) return false;
  return error("lookup", errno, detail);
}

Status MapHandle::update_bytes(const void* key, const void* value, uint64_t flags, std::string_view detail) const {
  if (bpf_map_update_elem(fd_, key, value, flags) == 0) return {};
  return error("update", errno, detail);
}

Result<bool> MapHandle::remove_bytes(const void* key, std::string_view detail) const {
  if (bpf_map_delete_elem(fd_, key) == 0) return true;
  if (errno == ENOENT) return false;
  return error("delete", errno, detail);
}

}  // namespace tollgate
