// JSON text from outside the agent (an API body, the config file, the
// state file, the agent's answer to the CLI) in and out without exceptions:
// every way a text can be wrong is an error that says where, and a dump
// never throws.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "result.h"

namespace tollgate {

// Deeper than any document of ours (a config nests 5 levels). The bound
// keeps the recursive copy and dump of a parsed value off the end of the
// stack: nlohmann parses a 100,000-level array without recursion, but not
// everything done with it afterwards is iterative.
inline constexpr size_t kMaxJsonDepth = 64;

// Parses `text` whole. An error (ErrorKind::invalid) begins with where
// ("line 3, column 7: ") and names the field when it is about a value
// ("line 1, column 12: weight: 1e400 is beyond the range of a number").
// Refused besides bad syntax: a UTF-8 byte-order mark (RFC 8259 §8.1
// forbids one on the wire; nlohmann would skip it silently), invalid
// UTF-8, a number beyond a double, nesting deeper than `max_depth`.
Result<nlohmann::json> parse_json_text(std::string_view text, size_t max_depth = kMaxJsonDepth);

// value.dump(indent), with invalid UTF-8 in strings replaced by U+FFFD
// instead of throwing: text that came from a client or a file may reach it.
std::string dump_json(const nlohmann::json& value, int indent = -1);

// "line L, column C" of byte `offset` of `text` (both counted from 1).
std::string text_position(std::string_view text, size_t offset);

}  // namespace tollgate
