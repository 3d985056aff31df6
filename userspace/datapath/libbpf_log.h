// libbpf's messages, in the one logger.
#pragma once

#include <string>
#include <string_view>

#include "log.h"

namespace tollgate::log {

// Routes libbpf's messages into the logger. A verifier log (a program the
// kernel refused) goes whole to debug and summarised to error.
void capture_libbpf();
// The reason a verifier log ends with, and the instruction it stopped at.
std::string summarize_verifier_log(std::string_view log);

}  // namespace tollgate::log
