// Texts at and beyond what a JSON reader can hold, for the tests of every
// JSON entry point: each must come back as a named error, never an abort.
#pragma once

#include <cstddef>
#include <string>

namespace tollgate::test {

// 400 digits: beyond uint64 and beyond a double.
inline std::string huge_integer() { return "1" + std::string(399, '0'); }
// 2^64: one past uint64, a double still.
inline const char* const kTwoToThe64 = "18446744073709551616";
// `depth` nested arrays around 0, closed: valid JSON, 100,000 deep by default.
inline std::string deep_array(size_t depth = 100000) { return std::string(depth, '[') + "0" + std::string(depth, ']'); }
inline const char* const kByteOrderMark = "\xEF\xBB\xBF";

}  // namespace tollgate::test
