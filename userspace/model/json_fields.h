// The JSON field readers the codecs share (internal to the model): each
// error names the field by its path ("services[1].backends[0].weight: ...").
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "result.h"

namespace tollgate::json_fields {

using nlohmann::json;

// "services[0]" + "address" -> "services[0].address"; "" + "address" -> "address".
inline std::string join(const std::string& path, std::string_view field) {
  return path.empty() ? std::string(field) : fmt::format("{}.{}", path, field);
}

inline Status check_fields(const json& object, const std::string& path,
                           std::initializer_list<std::string_view> allowed) {
  if (!object.is_object()) return make_error("{}: expected an object", path.empty() ? "(top level)" : path);
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (auto field : allowed) known = known || key == field;
    if (!known) return make_error("{}: unknown field", join(path, key));
  }
  return {};
}

inline Result<uint64_t> unsigned_field(const json& value, const std::string& path, uint64_t low, uint64_t high) {
  if (!value.is_number_unsigned()) return make_error("{}: expected an integer {}-{}", path, low, high);
  uint64_t number = value.get<uint64_t>();
  if (number < low || number > high) return make_error("{}: {} is out of range {}-{}", path, number, low, high);
  return number;
}

inline Result<std::string> string_field(const json& value, const std::string& path) {
  if (!value.is_string()) return make_error("{}: expected a string", path);
  return value.get<std::string>();
}

}  // namespace tollgate::json_fields
